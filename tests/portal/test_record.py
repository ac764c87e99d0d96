"""The run's record: a run always ends, history follows the order runs were started, busy means the
same address and port, every check keeps its own key, permalinks point where the portal listens, and
the hourly cap holds however many requests arrive at once.

These commit for real (`transactional_db`): the task writes through a second database thread, and the
cap test's requests run in threads of their own, each on its own connection.
"""

from __future__ import annotations

import contextlib
import threading

import pytest
from django.db import OperationalError, connections
from django.test import Client
from django.urls import reverse

from relaytests import runs, tasks
from relaytests.models import TestRun, VerdictChange
from tests.fakes.smtp import LOCAL_DOMAIN, FakeSMTPServer
from tests.portal.conftest import client_for
from tests.portal.factories import make_server, report
from tests.portal.worker import celery_worker, loopback_server, queued_run, wait_for_run

Status = TestRun.Status

pytestmark = pytest.mark.django_db(transaction=True)


def server_for(department, fake: FakeSMTPServer):
    return loopback_server(department, port=fake.port, mail_domain=LOCAL_DOMAIN)


# ---- a run always ends ----


@pytest.mark.parametrize("step", ["finish", "busy_runs", "save_progress"])
def test_an_error_in_the_runs_bookkeeping_ends_it_failed_with_a_reason(department, monkeypatch, step):
    def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(runs, step, locked)
    with FakeSMTPServer("closed") as fake:
        run = queued_run(server_for(department, fake))

        tasks.run_suite.apply((run.pk,))

    run.refresh_from_db()
    assert (run.status, run.status_reason) == (Status.FAILED, tasks.INTERNAL_ERROR)
    assert run.finished_at is not None


@pytest.mark.usefixtures("redis_broker")
@pytest.mark.slow
def test_ten_runs_started_at_once_all_end_with_their_reports(member, department):
    """Ten Tests pressed at once, a real worker of concurrency 4, every third server accepting relay."""
    with contextlib.ExitStack() as stack:
        fakes = [stack.enter_context(FakeSMTPServer("open" if i % 3 == 0 else "closed")) for i in range(10)]
        servers = [server_for(department, fake) for fake in fakes]
        worker = stack.enter_context(celery_worker("prefork", concurrency=4, RELAYTEST_CANARY_WAIT="2"))
        client = client_for(member)
        for server in servers:
            client.post(reverse("relaytests:server-test", args=[server.pk]))

        ended = [wait_for_run(run, lambda r: not r.is_live, worker=worker) for run in TestRun.objects.all()]
        log = worker.output()

    assert len(ended) == 10
    assert {(run.status, run.status_reason) for run in ended} == {(Status.DONE, "")}
    assert sorted(run.verdict for run in ended) == ["accepts_relay"] * 4 + ["secure"] * 6
    assert all(run.report["hosts"][0]["vectors"] for run in ended)
    assert " retry: " not in log  # ports of one address never waited for each other


def test_a_run_that_could_not_be_claimed_is_tried_again_not_left_queued(department, monkeypatch, settings):
    settings.RELAYTEST_BUSY_RETRY_DELAY = 0
    claim = runs.claim
    failures = [OperationalError("database is locked")]

    def locked_once(run_id):
        if failures:
            raise failures.pop()
        return claim(run_id)

    monkeypatch.setattr(runs, "claim", locked_once)
    with FakeSMTPServer("closed") as fake:
        run = queued_run(server_for(department, fake))

        tasks.run_suite.apply((run.pk,))

    run.refresh_from_db()
    assert (run.status, run.verdict) == (Status.DONE, "secure")


# ---- history in the order runs were started ----


@pytest.mark.usefixtures("redis_broker")
def test_a_fix_reads_as_a_fix_when_the_first_run_settles_after_the_retest(department, member, settings):
    settings.RELAYTEST_CANARY_WAIT = 1
    with FakeSMTPServer("open") as opened:
        server = server_for(department, opened)
        first = queued_run(server)
        tasks.run_suite.apply((first.pk,))
    first.refresh_from_db()
    assert (first.status, first.verdict) == (Status.AWAITING_DELIVERY, "accepts_relay")

    with FakeSMTPServer("closed", port=opened.port):  # fixed, and re-tested while the first run waits
        retest = queued_run(server, trigger=TestRun.Trigger.RETEST)
        tasks.run_suite.apply((retest.pk,))
    retest.refresh_from_db()
    assert (retest.status, retest.verdict) == (Status.DONE, "secure")
    page = client_for(member).get(retest.get_absolute_url()).content.decode()
    assert "Since last run" in page and "(was Accepts relay)" in page  # at once, with the verdict so far

    assert tasks.finalise_run(first.pk)  # the first run's wait ends after the re-test finished

    first.refresh_from_db()
    assert (first.status, first.verdict, first.settled_later) == (Status.DONE, "accepts_relay", True)
    history = [(c.run_id, c.old_verdict, c.new_verdict) for c in server.verdict_changes.all()]
    assert history == [(retest.pk, "accepts_relay", "secure"), (first.pk, "", "accepts_relay")]
    server.refresh_from_db()
    assert (server.latest_verdict, server.latest_run) == (
        "secure",
        retest,
    )  # the older run did not become current
    server_page = client_for(member).get(server.get_absolute_url()).content.decode()
    assert server_page.count("settled later") == 2  # the run's row and its verdict change
    now = server_page.split("<dt>Now</dt>")[1].split("</dd>")[0]
    assert "Secure" in now and "Accepts relay" not in now


def test_a_late_upgrade_of_an_older_run_writes_no_change_against_the_newer_one(department):
    server = loopback_server(department)
    older = queued_run(server, status=Status.RUNNING)
    runs.finish(older.pk, report("accepts_relay"))
    newer = queued_run(server, status=Status.RUNNING)
    runs.finish(newer.pk, report("secure"))

    older.refresh_from_db()
    older.verdict = "open_relay"
    older.save(update_fields=["verdict"])
    change = older.record_verdict_change(was="accepts_relay")

    assert change is None
    older.refresh_from_db()
    assert older.settled_later
    assert [(c.run_id, c.new_verdict) for c in server.verdict_changes.all()] == [
        (newer.pk, "secure"),
        (older.pk, "accepts_relay"),
    ]


# ---- permalinks ----


@pytest.mark.usefixtures("redis_broker")
@pytest.mark.parametrize("site_url", ["", "https://relaytest.example.edu"])
def test_the_permalink_of_page_and_test_message_is_where_the_portal_is(member, server, settings, site_url):
    settings.SITE_URL = site_url
    settings.ALLOWED_HOSTS = ["portal.example.edu"]
    client = client_for(member)

    client.post(reverse("relaytests:server-test", args=[server.pk]), HTTP_HOST="portal.example.edu:8443")

    run = server.runs.get()
    expected = f"{site_url or 'http://portal.example.edu:8443'}/runs/{run.pk}/"
    page = client.get(run.get_absolute_url(), HTTP_HOST="portal.example.edu:8443").content.decode()
    assert f'<a href="{expected}">{expected}</a>' in page
    assert tasks.suite_config(run).portal_url == expected


# ---- the hourly cap ----


@pytest.mark.usefixtures("redis_broker")
def test_the_hourly_cap_holds_under_parallel_requests(member, department, settings):
    settings.RELAYTEST_RUNS_PER_HOUR = 3
    servers = [make_server(department, f"mx{i}.physics.example.edu") for i in range(12)]
    start = threading.Barrier(len(servers))

    def press_test(server):
        client = Client()
        client.force_login(member)
        start.wait()
        try:
            client.post(reverse("relaytests:server-test", args=[server.pk]))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=press_test, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert TestRun.objects.filter(started_by=member).count() == 3
    assert not VerdictChange.objects.exists()
