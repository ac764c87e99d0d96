"""The run_suite task in this process (Celery's `apply`) against loopback fake SMTP servers.

The task writes progress through a second database thread, so these tests commit for real
(`transactional_db`) instead of running inside one rolled-back transaction.
"""

from __future__ import annotations

import asyncio

import pytest

from relaytests import runs
from relaytests.models import TestRun, VerdictChange
from relaytests.probe.report import HostReport, VectorResult
from relaytests.probe.suite import ProgressEvent
from relaytests.tasks import ADDRESS_BUSY, ProgressRecorder, reap_stale_runs, run_suite
from tests.fakes.smtp import LOCAL_DOMAIN, FakeSMTPServer
from tests.portal.worker import loopback_server, queued_run

Status = TestRun.Status

pytestmark = pytest.mark.django_db(transaction=True)


def server_for(department, fake: FakeSMTPServer):
    return loopback_server(department, port=fake.port, mail_domain=LOCAL_DOMAIN)


def test_a_closed_server_ends_done_and_secure_with_the_engines_report(department):
    with FakeSMTPServer("closed") as fake:
        run = queued_run(server_for(department, fake))

        run_suite.apply((run.pk,))

    run.refresh_from_db()
    assert (run.status, run.verdict, run.status_reason) == (Status.DONE, "secure", "")
    assert run.report["run_id"] == run.probe_run_id
    [host] = run.report["hosts"]
    assert (host["address"], host["port"], host["verdict"]) == ("127.0.0.1", fake.port, "secure")
    relay_attempts = [v for v in host["vectors"] if v["evidence"] != "control"]
    assert relay_attempts and {v["outcome"] for v in relay_attempts} == {"rejected"}
    assert run.started_at <= run.finished_at


def test_an_open_relay_after_a_secure_run_is_recorded_as_a_verdict_change(department):
    with FakeSMTPServer("closed") as closed:
        server = server_for(department, closed)
        first = queued_run(server)
        run_suite.apply((first.pk,))
    with FakeSMTPServer("open", port=closed.port) as opened:
        assert opened.port == server.port
        second = queued_run(server)
        run_suite.apply((second.pk,))

    second.refresh_from_db()
    assert second.verdict == "accepts_relay"
    change = VerdictChange.objects.get(run=second)
    assert (change.old_verdict, change.new_verdict) == ("secure", "accepts_relay")


def test_a_run_that_is_not_queued_any_more_is_left_alone(department):
    with FakeSMTPServer("closed") as fake:
        run = queued_run(
            server_for(department, fake), status=Status.INTERRUPTED, status_reason=runs.NEVER_STARTED
        )

        run_suite.apply((run.pk,))

    assert fake.seen.connections == []
    run.refresh_from_db()
    assert (run.status, run.status_reason) == (Status.INTERRUPTED, runs.NEVER_STARTED)


def test_a_run_whose_address_stays_busy_gives_up_after_its_retries(department):
    """Eager retries run at once, so the busy address never frees: the bound is what is tested."""
    with FakeSMTPServer("closed") as fake:
        holder = queued_run(
            loopback_server(department, "127.0.0.2"), status=Status.RUNNING, addresses=["127.0.0.1"]
        )
        run = queued_run(server_for(department, fake))

        run_suite.apply((run.pk,))

    assert fake.seen.connections == []
    run.refresh_from_db()
    assert (run.status, run.status_reason) == (Status.FAILED, ADDRESS_BUSY)
    holder.refresh_from_db()
    assert holder.status == Status.RUNNING


def test_progress_events_replace_each_hosts_entry_in_address_order(department):
    server = loopback_server(department, addresses=["127.0.0.1", "::1"])
    run = runs.claim(queued_run(server).pk)
    recorder = ProgressRecorder(run)
    vector = VectorResult("plain", "relaytest.invalid", "<a@b>", "<c@d>", "rejected", "relay_denied", 554)
    ipv6, ipv4 = HostReport("::1", 25), HostReport("127.0.0.1", 25)

    async def events():
        await recorder.on_progress(ProgressEvent("host_started", ipv6))
        await recorder.on_progress(ProgressEvent("host_started", ipv4))
        ipv4.vectors.append(vector)
        await recorder.on_progress(ProgressEvent("vector_done", ipv4, vector))
        await recorder.on_progress(ProgressEvent("host_done", ipv4))

    asyncio.run(events())

    run.refresh_from_db()
    hosts = run.report["hosts"]
    assert [(h["address"], h["state"]) for h in hosts] == [("127.0.0.1", "done"), ("::1", "testing")]
    assert [v["id"] for v in hosts[0]["vectors"]] == ["plain"]
    assert run.report["target"] == server.target
    assert run.heartbeat_at > run.started_at


def test_the_reaper_task_interrupts_what_a_dead_worker_left(department, settings):
    settings.RELAYTEST_STALE_AFTER = 0
    run = queued_run(loopback_server(department), status=Status.RUNNING)
    runs.touch(run.pk)

    assert reap_stale_runs.apply().get() == 1

    run.refresh_from_db()
    assert (run.status, run.status_reason) == (Status.INTERRUPTED, runs.WORKER_LOST)
