"""The run state machine: each transition is won by exactly one caller, and the reaper keeps history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from relaytests import runs
from relaytests.deliveries import record_message
from relaytests.models import TestRun, VerdictChange
from tests.portal.factories import TOKEN, accepted_report, delivery_of, make_server
from tests.portal.worker import loopback_server, queued_run

Status = TestRun.Status
STALE_AFTER = 300
QUEUED_AFTER = 6 * 3600

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(department):
    return loopback_server(department)


def report_with(verdict: str) -> dict:
    return {
        "schema": "relaytest/1",
        "verdict": verdict,
        "hosts": [{"address": "127.0.0.1", "verdict": verdict}],
    }


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def test_a_queued_run_is_claimed_once(server):
    run = queued_run(server)

    claimed = runs.claim(run.pk)

    assert claimed.status == Status.RUNNING
    assert claimed.started_at == claimed.heartbeat_at
    assert runs.claim(run.pk) is None


def test_a_reaped_run_cannot_be_claimed_by_a_late_task(server):
    run = queued_run(server, status=Status.INTERRUPTED)

    assert runs.claim(run.pk) is None
    run.refresh_from_db()
    assert run.status == Status.INTERRUPTED


def test_a_released_run_is_queued_again_and_claimable(server):
    run = runs.claim(queued_run(server).pk)

    assert runs.release(run)

    run.refresh_from_db()
    assert (run.status, run.started_at, run.heartbeat_at) == (Status.QUEUED, None, None)
    assert runs.claim(run.pk) is not None


def test_busy_runs_are_the_running_ones_on_one_of_the_runs_hosts(server):
    holder = queued_run(
        loopback_server(server.department, "127.0.0.2"),
        status=Status.RUNNING,
        addresses=["127.0.0.2", "127.0.0.3"],
    )
    queued_run(loopback_server(server.department, "127.0.0.4"), status=Status.DONE)
    run = queued_run(server, addresses=["127.0.0.1", "127.0.0.3", "127.0.0.4"])

    assert runs.busy_runs(run) == [holder.pk]


def test_a_run_does_not_block_itself(server):
    run = runs.claim(queued_run(server).pk)

    assert runs.busy_runs(run) == []


def test_two_ports_of_one_address_do_not_wait_for_each_other(server):
    on_2703 = runs.claim(queued_run(loopback_server(server.department, port=2703)).pk)
    on_2704 = runs.claim(queued_run(loopback_server(server.department, port=2704)).pk)
    same_port = queued_run(
        make_server(server.department, "mx.example.edu", port=2703, addresses=["127.0.0.1"])
    )

    assert runs.busy_runs(on_2703) == runs.busy_runs(on_2704) == []
    assert runs.busy_runs(same_port) == [on_2703.pk]


def test_a_run_waits_for_another_on_any_of_the_ports_either_server_lists(server):
    both = runs.claim(queued_run(loopback_server(server.department, port=2703, more_ports=[2704])).pk)
    on_2704 = queued_run(make_server(server.department, "mx.example.edu", port=2704, addresses=["127.0.0.1"]))
    on_2705 = queued_run(make_server(server.department, "mx.example.edu", port=2705, addresses=["127.0.0.1"]))

    assert runs.busy_runs(on_2704) == [both.pk]
    assert runs.busy_runs(on_2705) == []


def test_finishing_stores_report_and_verdict_and_the_change(server):
    first = queued_run(server, status=Status.RUNNING)
    assert runs.finish(first.pk, report_with("accepts_relay"))
    second = queued_run(server, status=Status.RUNNING)

    assert runs.finish(second.pk, report_with("secure"))

    second.refresh_from_db()
    assert (second.status, second.verdict, second.report) == (Status.DONE, "secure", report_with("secure"))
    assert second.finished_at is not None
    change = VerdictChange.objects.get(run=second)
    assert (change.old_verdict, change.new_verdict) == ("accepts_relay", "secure")


def test_the_same_verdict_again_writes_no_change(server):
    for _ in range(2):
        run = queued_run(server, status=Status.RUNNING)
        runs.finish(run.pk, report_with("secure"))

    assert VerdictChange.objects.filter(server=server, old_verdict="secure").count() == 0


def test_a_run_reaped_meanwhile_is_not_finished_over(server):
    run = queued_run(server, status=Status.INTERRUPTED, status_reason=runs.WORKER_LOST)

    assert not runs.finish(run.pk, report_with("secure"))

    run.refresh_from_db()
    assert (run.status, run.verdict) == (Status.INTERRUPTED, "")


def test_fail_ends_a_queued_run_with_its_reason(server):
    run = queued_run(server)

    assert runs.fail(run.pk, runs.BROKER_UNREACHABLE)

    run.refresh_from_db()
    assert (run.status, run.status_reason) == (Status.FAILED, runs.BROKER_UNREACHABLE)
    assert not run.is_active


def test_fail_leaves_a_finished_run_alone(server):
    run = queued_run(server, status=Status.DONE, verdict="secure")

    assert not runs.fail(run.pk, "late")

    run.refresh_from_db()
    assert (run.status, run.status_reason) == (Status.DONE, "")


def test_interrupt_keeps_the_partial_report(server):
    partial = {"hosts": [{"address": "127.0.0.1", "state": "testing"}]}
    run = queued_run(server, status=Status.RUNNING, report=partial)

    assert runs.interrupt(run.pk, "time limit")

    run.refresh_from_db()
    assert (run.status, run.status_reason, run.report) == (Status.INTERRUPTED, "time limit", partial)


def test_progress_and_heartbeat_only_touch_a_running_run(server):
    running = queued_run(server, status=Status.RUNNING)
    done = queued_run(loopback_server(server.department, "127.0.0.9"), status=Status.DONE)

    assert runs.save_progress(running.pk, {"hosts": []})
    assert runs.touch(running.pk)
    assert not runs.save_progress(done.pk, {"hosts": []})
    assert not runs.touch(done.pk)
    done.refresh_from_db()
    assert done.report == {} and done.heartbeat_at is None


def test_the_reaper_interrupts_silent_runs_and_old_queued_ones_in_one_update(
    server, django_assert_num_queries
):
    partial = {"hosts": [{"address": "127.0.0.1", "state": "testing"}]}
    silent = queued_run(
        server, status=Status.RUNNING, started_at=ago(900), heartbeat_at=ago(600), report=partial
    )
    other = loopback_server(server.department, "127.0.0.2")
    never_taken = queued_run(other, status=Status.QUEUED)
    TestRun.objects.filter(pk=never_taken.pk).update(created_at=ago(QUEUED_AFTER + 60))

    with django_assert_num_queries(1):
        reaped = runs.reap_stale(STALE_AFTER, QUEUED_AFTER)

    assert reaped == 2
    silent.refresh_from_db()
    never_taken.refresh_from_db()
    assert (silent.status, silent.status_reason, silent.report) == (
        Status.INTERRUPTED,
        runs.WORKER_LOST,
        partial,
    )
    assert silent.heartbeat_at is not None and silent.finished_at is not None
    assert (never_taken.status, never_taken.status_reason) == (Status.INTERRUPTED, runs.NEVER_STARTED)


def test_the_reaper_leaves_live_runs_and_finished_ones_alone(server):
    alive = queued_run(server, status=Status.RUNNING, started_at=ago(900), heartbeat_at=ago(10))
    waiting = queued_run(loopback_server(server.department, "127.0.0.2"), status=Status.QUEUED)
    finished = queued_run(
        loopback_server(server.department, "127.0.0.3"), status=Status.DONE, heartbeat_at=ago(9000)
    )

    assert runs.reap_stale(STALE_AFTER, QUEUED_AFTER) == 0

    assert [TestRun.objects.get(pk=r.pk).status for r in (alive, waiting, finished)] == [
        Status.RUNNING,
        Status.QUEUED,
        Status.DONE,
    ]


def test_a_running_run_that_never_beat_is_judged_by_its_start(server):
    run = queued_run(server, status=Status.RUNNING, started_at=ago(STALE_AFTER + 60), heartbeat_at=None)

    assert runs.reap_stale(STALE_AFTER, QUEUED_AFTER) == 1

    run.refresh_from_db()
    assert run.status == Status.INTERRUPTED


def test_a_report_with_test_messages_out_waits_for_them_without_a_verdict_change(server):
    queued_run(server, status=Status.DONE, verdict="secure")
    run = queued_run(loopback_server(server.department, "127.0.0.2"), status=Status.RUNNING)

    assert runs.finish(run.pk, accepted_report(), awaited={TOKEN}) == Status.AWAITING_DELIVERY

    run.refresh_from_db()
    assert (run.status, run.verdict) == (Status.AWAITING_DELIVERY, "accepts_relay")
    assert run.report == accepted_report()
    assert run.finished_at is not None  # the probing ended; the wait is the finaliser's
    assert VerdictChange.objects.count() == 0


def test_a_delivery_that_came_while_the_worker_probed_is_folded_in_at_finish(server):
    run = queued_run(server, status=Status.RUNNING)
    record_message([delivery_of(run)])

    assert runs.finish(run.pk, accepted_report(), awaited={TOKEN}) == Status.DONE

    run.refresh_from_db()
    assert (run.status, run.verdict, run.report["verdict"]) == (Status.DONE, "open_relay", "open_relay")
    [plain, _] = run.report["hosts"][0]["vectors"]
    assert (plain["delivered"], plain["delivery"]["peer_address"], plain["delivery"]["late"]) == (
        True,
        "192.0.2.25",
        False,
    )
    assert VerdictChange.objects.get(run=run).new_verdict == "open_relay"


def test_the_reaper_leaves_runs_awaiting_delivery_alone_however_old(server):
    run = queued_run(
        server,
        status=Status.AWAITING_DELIVERY,
        verdict="accepts_relay",
        started_at=ago(9000),
        heartbeat_at=ago(9000),
        finished_at=ago(9000),
    )

    assert runs.reap_stale(STALE_AFTER, QUEUED_AFTER) == 0

    run.refresh_from_db()
    assert run.status == Status.AWAITING_DELIVERY


def test_a_wait_is_overdue_once_its_finaliser_should_long_have_run(server):
    wait = 900
    overdue = queued_run(server, status=Status.AWAITING_DELIVERY, finished_at=ago(wait + STALE_AFTER + 60))
    queued_run(
        loopback_server(server.department, "127.0.0.2"),
        status=Status.AWAITING_DELIVERY,
        finished_at=ago(wait + 60),
    )
    queued_run(
        loopback_server(server.department, "127.0.0.3"),
        status=Status.DONE,
        finished_at=ago(wait + STALE_AFTER + 60),
    )

    assert runs.awaiting_past(wait, STALE_AFTER) == [overdue.pk]
