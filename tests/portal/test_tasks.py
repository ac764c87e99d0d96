"""The run_suite task in this process (Celery's `apply`) against loopback fake SMTP servers.

The task writes progress through a second database thread, so these tests commit for real
(`transactional_db`) instead of running inside one rolled-back transaction.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime, timedelta

import pytest
import redis
from django.db import connection
from django.utils import timezone

from relaytests import runs, tasks, worker_loop
from relaytests.models import TestRun, VerdictChange
from relaytests.probe.report import HostReport, VectorResult
from relaytests.probe.suite import ProgressEvent
from relaytests.tasks import ADDRESS_BUSY, ProgressRecorder, finalise_run, reap_stale_runs, run_suite
from tests.fakes.smtp import LOCAL_DOMAIN, FakeSMTPServer
from tests.portal.conftest import client_for
from tests.portal.factories import accepted_report
from tests.portal.worker import REDIS_URL, loopback_server, queued_run

Status = TestRun.Status

pytestmark = pytest.mark.django_db(transaction=True)

RUN_TAKES_AT_MOST = 120  # seconds: a bound for a stuck run, not a speed claim


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
    # the server's mail domain is checked as the Internet sees it, during the same run
    assert sorted(c["id"] for c in run.report["checks"]) == ["dmarc", "mx", "spf"]


def test_a_server_with_more_ports_is_tested_on_each_as_its_own_host_and_the_page_shows_each(
    department, member
):
    # As a server on 25 that lists 587: two loopback fakes stand for the two ports.
    with FakeSMTPServer("closed") as on_25, FakeSMTPServer("open") as on_587:
        server = server_for(department, on_25)
        server.more_ports = [on_587.port]
        server.save()
        run = queued_run(server)

        run_suite.apply((run.pk,))

    run.refresh_from_db()
    hosts = [(h["address"], h["port"], h["verdict"]) for h in run.report["hosts"]]
    assert hosts == [("127.0.0.1", on_25.port, "secure"), ("127.0.0.1", on_587.port, "accepts_relay")]
    assert run.verdict == "accepts_relay"
    page = client_for(member).get(run.get_absolute_url()).content.decode()
    for port in (on_25.port, on_587.port):
        assert f'<section class="host" aria-label="127.0.0.1 port {port}">' in page
        assert f'127.0.0.1 <span class="muted">port {port}</span>' in page


def test_an_open_relay_after_a_secure_run_is_recorded_as_a_verdict_change(department, redis_broker):
    with FakeSMTPServer("closed") as closed:
        server = server_for(department, closed)
        first = queued_run(server)
        run_suite.apply((first.pk,))
    with FakeSMTPServer("open", port=closed.port) as opened:
        assert opened.port == server.port
        second = queued_run(server)
        run_suite.apply((second.pk,))

    second.refresh_from_db()
    assert (second.status, second.verdict) == (Status.AWAITING_DELIVERY, "accepts_relay")
    assert not VerdictChange.objects.filter(run=second).exists()  # not final while test messages are out

    assert finalise_run(second.pk)  # the canary wait is over and nothing arrived

    second.refresh_from_db()
    assert (second.status, second.verdict) == (Status.DONE, "accepts_relay")
    relay_attempts = [v for v in second.report["hosts"][0]["vectors"] if v["evidence"] != "control"]
    assert {v["delivered"] for v in relay_attempts if v["data_code"] == 250} == {False}
    change = VerdictChange.objects.get(run=second)
    assert (change.old_verdict, change.new_verdict) == ("secure", "accepts_relay")
    assert not finalise_run(second.pk)
    assert VerdictChange.objects.filter(run=second).count() == 1


def test_a_run_with_test_messages_out_schedules_its_finaliser_on_the_celery_queue(
    department, redis_broker, settings
):
    settings.RELAYTEST_CANARY_WAIT = 600
    with FakeSMTPServer("open") as fake:
        run = queued_run(server_for(department, fake))
        sent = timezone.now()

        run_suite.apply((run.pk,))

    assert b"DATA" in fake.seen.commands  # the worker completed the test messages
    [message] = [json.loads(raw) for raw in redis.Redis.from_url(REDIS_URL).lrange("celery", 0, -1)]
    headers = message["headers"]
    assert (headers["task"], headers["argsrepr"]) == ("relaytests.tasks.finalise_run", f"({run.pk},)")
    due = datetime.fromisoformat(headers["eta"]) - sent
    assert timedelta(seconds=600) <= due < timedelta(seconds=600 + RUN_TAKES_AT_MOST)
    assert TestRun.objects.get(pk=run.pk).status == Status.AWAITING_DELIVERY


def test_with_the_canary_off_an_accepting_server_is_done_at_once_and_sent_no_message(department, settings):
    settings.RELAYTEST_CANARY_ENABLED = False
    with FakeSMTPServer("open") as fake:
        run = queued_run(server_for(department, fake))

        run_suite.apply((run.pk,))

    run.refresh_from_db()
    assert (run.status, run.verdict) == (Status.DONE, "accepts_relay")
    assert b"DATA" not in fake.seen.commands
    assert {v["delivered"] for v in run.report["hosts"][0]["vectors"]} == {None}


def test_a_run_holds_no_database_connection_while_it_waits_for_the_probe(department, monkeypatch):
    """A worker thread waits minutes for its run; dozens of them must not keep dozens of connections."""
    held = []
    run_on_the_loop = worker_loop.run

    def waiting(*args, **kwargs):
        held.append(connection.connection is not None)
        return run_on_the_loop(*args, **kwargs)

    monkeypatch.setattr(worker_loop, "run", waiting)
    with FakeSMTPServer("closed") as fake:
        run = queued_run(server_for(department, fake))

        run_suite.apply((run.pk,))

    assert held == [False]
    run.refresh_from_db()
    assert (run.status, run.verdict) == (Status.DONE, "secure")


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
            loopback_server(department, "127.0.0.2", port=fake.port),
            status=Status.RUNNING,
            addresses=["127.0.0.1"],
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
        async with recorder.writing_progress():
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


def test_progress_is_written_at_most_once_a_period_and_the_last_snapshot_always(department, monkeypatch):
    monkeypatch.setattr(tasks, "PROGRESS_EVERY", 60)  # nothing but the first and the last in this test
    writes = []
    monkeypatch.setattr(runs, "save_progress", lambda run_id, report: writes.append(report) or True)
    run = runs.claim(queued_run(loopback_server(department)).pk)
    recorder = ProgressRecorder(run)
    busy = HostReport("127.0.0.1", 25)

    async def events():
        async with recorder.writing_progress():
            await recorder.on_progress(ProgressEvent("host_started", busy))
            await asyncio.sleep(0)  # the writer takes the first snapshot at once
            for number in range(40):
                busy.vectors.append(
                    VectorResult(f"v{number}", "h", "<a@b>", "<c@d>", "rejected", "relay_denied", 554)
                )
                await recorder.on_progress(ProgressEvent("vector_done", busy, busy.vectors[-1]))
            await recorder.on_progress(ProgressEvent("host_done", busy))

    asyncio.run(events())

    assert len(writes) == 2  # 42 events: the first snapshot, then the last (coalesced)
    [last] = writes[-1]["hosts"]
    assert (last["state"], len(last["vectors"])) == ("done", 40)


def test_the_progress_of_several_runs_is_written_on_several_threads_at_once(department, monkeypatch):
    """Dozens of runs share one loop: their writes must not queue behind each other on one thread."""
    writing, most = [], []
    lock = threading.Lock()

    def slow_write(run_id, report):
        with lock:
            writing.append(run_id)
            most.append(len(writing))
        time.sleep(0.2)  # a database that takes its time
        with lock:
            writing.remove(run_id)
        return True

    monkeypatch.setattr(runs, "save_progress", slow_write)
    recorders = [ProgressRecorder(runs.claim(queued_run(loopback_server(department, f"127.0.0.{n}")).pk))
                 for n in range(1, 5)]  # fmt: skip

    async def one_event_each():
        async def write(recorder):
            async with recorder.writing_progress():
                await recorder.on_progress(ProgressEvent("host_started", HostReport("127.0.0.1", 25)))

        await asyncio.gather(*(write(recorder) for recorder in recorders))

    asyncio.run(one_event_each())

    assert len(most) == 4 and max(most) > 1


def test_database_work_on_the_loops_threads_keeps_no_connection_past_its_age(department, settings):
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] == 0  # the default: none outlives its work
    run = queued_run(loopback_server(department))

    touched = tasks.like_a_request(runs.touch)(run.pk)

    assert touched is False  # the run is queued, not running: the query ran all the same
    assert connection.connection is None


def test_the_reaper_task_interrupts_what_a_dead_worker_left(department, settings):
    settings.RELAYTEST_STALE_AFTER = 0
    run = queued_run(loopback_server(department), status=Status.RUNNING)
    runs.touch(run.pk)

    assert reap_stale_runs.apply().get() == 1

    run.refresh_from_db()
    assert (run.status, run.status_reason) == (Status.INTERRUPTED, runs.WORKER_LOST)


def test_the_reaper_task_finalises_a_wait_whose_finaliser_was_lost(department, settings):
    settings.RELAYTEST_CANARY_WAIT, settings.RELAYTEST_STALE_AFTER = 60, 60
    lost = queued_run(
        loopback_server(department),
        status=Status.AWAITING_DELIVERY,
        verdict="accepts_relay",
        report=accepted_report(),
        finished_at=timezone.now() - timedelta(seconds=121),
    )
    due = queued_run(
        loopback_server(department, "127.0.0.2"),
        status=Status.AWAITING_DELIVERY,
        verdict="accepts_relay",
        report=accepted_report(),
        finished_at=timezone.now(),
    )

    reap_stale_runs.apply()

    lost.refresh_from_db()
    due.refresh_from_db()
    assert (lost.status, lost.verdict) == (Status.DONE, "accepts_relay")
    assert VerdictChange.objects.get().run == lost
    assert due.status == Status.AWAITING_DELIVERY  # its own finaliser is still on its way


def test_a_run_and_manage_py_relaytest_take_the_engine_settings_from_one_mapping(department, settings):
    settings.RELAYTEST_PROBE_HELO = "probe.example.edu"
    settings.RELAYTEST_SOURCE_ADDRESS = "127.0.0.7"
    settings.RELAYTEST_COMMAND_TIMEOUT = 12.5
    settings.RELAYTEST_DNSBL_ZONES = ["dnsbl.example.edu"]
    settings.PORTAL_HELP_CONTACT = "mail-help@example.edu"
    settings.RELAYTEST_VANTAGE = "inside"
    run = queued_run(loopback_server(department, port=2525, mail_domain=LOCAL_DOMAIN))

    of_the_run = tasks.suite_config(run)
    of_the_command = tasks.portal_defaults().suite_config()

    shared = (
        "probe_helo",
        "source_address",
        "command_timeout",
        "dnsbl_zones",
        "contact",
        "canary_secret",
        "vantage",
    )
    assert [getattr(of_the_run, name) for name in shared] == [
        getattr(of_the_command, name) for name in shared
    ]
    assert (of_the_run.probe_helo, of_the_run.source_address) == ("probe.example.edu", "127.0.0.7")
    assert (of_the_run.dnsbl_zones, of_the_run.contact) == (("dnsbl.example.edu",), "mail-help@example.edu")
    assert of_the_run.vantage == "inside"
    # What is the run's own: its id and its server's mail domain.
    assert (of_the_run.run_id, of_the_run.local_domain) == (run.probe_run_id, LOCAL_DOMAIN)
