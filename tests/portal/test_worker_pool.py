"""Many runs in one worker process: Celery's threads pool, every run on the process's one event loop.

A real worker (`--pool threads`) works on several runs at once; each ends with its own verdict and
its own progress, the cap on hosts in flight holds for the process across its runs (counted at the
fake servers), the soft time limit holds without prefork's signals, and a killed worker's runs are
reaped like any other's, and a run whose address is busy tries again later.
"""

from __future__ import annotations

import contextlib
import dataclasses

import pytest

from relaytests import runs
from relaytests.models import TestRun
from relaytests.tasks import TIME_LIMIT, enqueue_run, reap_stale_runs
from tests.fakes.smtp import CLOSED, LOCAL_DOMAIN, Crowd, FakeSMTPServer
from tests.portal.worker import (
    REDIS_URL,
    celery_worker,
    is_final,
    loopback_server,
    publishing_to,
    queued_run,
    wait_for_run,
)

Status = TestRun.Status

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

# Every reply a little late, so that runs started together are still running together.
UNHURRIED = dataclasses.replace(CLOSED, description="closed, every reply 20 ms late", banner_delay=0.02,
                                tarpit_after_errors=0, tarpit_seconds=0.02)  # fmt: skip
UNHURRIED_OPEN = dataclasses.replace(
    UNHURRIED, description="open, every reply 20 ms late", relays=frozenset({"any"})
)
# Answers the first relay attempts at once, then stalls every reply: the run is caught part-way.
STALLS_AFTER_ONE_VECTOR = "stalls-after-two-refusals"
PATIENT_PROBE = {"RELAYTEST_COMMAND_TIMEOUT": "900", "RELAYTEST_RUN_DEADLINE": "900"}


@pytest.fixture
def redis_broker():
    with publishing_to(REDIS_URL):
        yield


def started_runs(department, fakes: list[FakeSMTPServer]) -> list[TestRun]:
    queued = [queued_run(loopback_server(department, port=f.port, mail_domain=LOCAL_DOMAIN)) for f in fakes]
    assert all(enqueue_run(run) for run in queued)
    return queued


def test_one_worker_process_works_on_several_runs_at_once_each_with_its_own_report(department, redis_broker):
    behaviours = [UNHURRIED, UNHURRIED_OPEN, UNHURRIED, UNHURRIED_OPEN]
    with contextlib.ExitStack() as stack:
        fakes = [stack.enter_context(FakeSMTPServer(behaviour)) for behaviour in behaviours]
        worker = stack.enter_context(celery_worker("threads", concurrency=4, RELAYTEST_CANARY_WAIT="1"))
        queued = started_runs(department, fakes)
        ended = [wait_for_run(run, lambda r: not r.is_live, worker=worker) for run in queued]
        log = worker.output()

    assert [(run.status, run.verdict) for run in ended] == [
        (Status.DONE, "secure"), (Status.DONE, "accepts_relay"),
    ] * 2  # fmt: skip
    assert max(run.started_at for run in ended) < min(run.finished_at for run in ended)  # all at once
    for run, fake in zip(ended, fakes, strict=True):
        [host] = run.report["hosts"]
        assert host["port"] == fake.port and host["connections"] == len(fake.seen.connections)
        assert fake.seen.max_concurrent == 1
    assert "Traceback" not in log


def test_the_cap_on_hosts_in_flight_holds_for_the_worker_process_across_its_runs(department, redis_broker):
    crowd = Crowd()  # connections open at once to any of the servers
    with contextlib.ExitStack() as stack:
        fakes = [stack.enter_context(FakeSMTPServer(UNHURRIED, crowd=crowd)) for _ in range(5)]
        worker = stack.enter_context(
            celery_worker("threads", concurrency=5, RELAYTEST_MAX_HOSTS_IN_FLIGHT="2")
        )
        ended = [wait_for_run(run, is_final, worker=worker) for run in started_runs(department, fakes)]

    assert {(run.status, run.verdict) for run in ended} == {(Status.DONE, "secure")}
    assert crowd.most == 2  # five runs of one host each: a cap per run (or per thread) would allow five
    assert max(fake.seen.max_concurrent for fake in fakes) == 1


def test_a_run_whose_address_another_run_of_the_same_worker_tests_waits_and_tries_again(
    department, redis_broker
):
    """One connection per address and port: a second server registered on the same address."""
    with (
        FakeSMTPServer(UNHURRIED) as fake,
        celery_worker("threads", concurrency=4, RELAYTEST_BUSY_RETRY_DELAY="1") as worker,
    ):
        [first] = started_runs(department, [fake])
        wait_for_run(first, lambda r: r.status == Status.RUNNING, worker=worker)
        alias = loopback_server(department, "127.0.0.2", port=fake.port, addresses=["127.0.0.1"])
        second = queued_run(alias)
        assert enqueue_run(second)
        ended = [wait_for_run(run, is_final, worker=worker) for run in (first, second)]
        log = worker.output()

    assert [(run.status, run.verdict) for run in ended] == [(Status.DONE, "secure")] * 2
    assert " retry: Retry in" in log
    # One after the other, as the server saw it. Not by the runs' times: started_at is the claim,
    # which comes before the look for busy hosts (the second's retry may claim a few milliseconds
    # before the first records its end), and under load either run may be the one that waits.
    assert fake.seen.max_concurrent == 1


def test_a_threads_worker_ends_a_run_over_its_soft_time_limit_itself(department, redis_broker, settings):
    settings.RELAYTEST_TASK_SOFT_LIMIT, settings.RELAYTEST_TASK_HARD_LIMIT = 3, 120  # sent with the task
    with (
        FakeSMTPServer(STALLS_AFTER_ONE_VECTOR) as fake,
        celery_worker("threads", concurrency=4, **PATIENT_PROBE) as worker,
    ):
        [run] = started_runs(department, [fake])
        run = wait_for_run(run, is_final, worker=worker)

    assert (run.status, run.status_reason) == (Status.INTERRUPTED, TIME_LIMIT.format(seconds=3))
    assert _vectors_recorded(run) >= 1


def test_a_killed_threads_worker_leaves_each_of_its_runs_to_the_reaper(department, redis_broker, settings):
    with contextlib.ExitStack() as stack:
        fakes = [stack.enter_context(FakeSMTPServer(STALLS_AFTER_ONE_VECTOR)) for _ in range(3)]
        worker = stack.enter_context(celery_worker("threads", concurrency=3, **PATIENT_PROBE))
        caught = [
            wait_for_run(run, lambda r: _vectors_recorded(r) >= 1, worker=worker)
            for run in started_runs(department, fakes)
        ]
        worker.kill()
    partial = {run.pk: run.report for run in caught}

    settings.RELAYTEST_STALE_AFTER = 0  # the killed worker's last heartbeats are already too old
    assert reap_stale_runs() == 3

    for run in caught:
        run.refresh_from_db()
        assert (run.status, run.status_reason) == (Status.INTERRUPTED, runs.WORKER_LOST)
        assert run.report == partial[run.pk] and _vectors_recorded(run) >= 1


def _vectors_recorded(run: TestRun) -> int:
    return sum(len(host["vectors"]) for host in run.report.get("hosts", []))
