"""A server's state in columns: written with its run's verdict, read by every list in a constant number
of queries, and the history a page at a time."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from relaytests import runs
from relaytests.deliveries import finalise, record_message
from relaytests.models import MailServer, TestRun
from tests.portal import factories
from tests.portal.conftest import client_for
from tests.portal.factories import accepted_report, check, delivery_of, host, report

pytestmark = pytest.mark.django_db

Status = TestRun.Status
migration = __import__("relaytests.migrations.0005_state", fromlist=["fill_state"])


def running_run(server: MailServer) -> TestRun:
    return factories.make_run(server, status=Status.RUNNING)


def state_of(server: MailServer) -> tuple:
    server.refresh_from_db()
    return server.latest_run_id, server.latest_verdict


# ---- written in the transaction that gives a run its verdict ----


def test_finishing_a_run_makes_its_verdict_the_servers_state(server):
    run = running_run(server)
    listed = host(
        checks=[
            check("dnsbl", "fail"),
            {**check("starttls", "pass"), "data": {"not_after": "2027-03-01T00:00:00+00:00"}},
        ]
    )

    runs.finish(run.pk, report("secure", hosts=[listed]))

    server.refresh_from_db()
    assert (server.latest_run, server.latest_verdict, server.last_tested_at) == (
        run,
        "secure",
        run.created_at,
    )
    assert server.blocklisted
    assert server.certificate_expires_at == datetime(2027, 3, 1, tzinfo=UTC)


def test_a_verdict_so_far_is_the_state_and_the_delivery_that_settles_it_updates_it(server):
    run = running_run(server)
    runs.finish(run.pk, accepted_report(), awaited=[factories.TOKEN])
    assert state_of(server) == (run.pk, "accepts_relay")

    record_message([delivery_of(run)])  # the last awaited message: the run is done, an open relay

    assert state_of(server) == (run.pk, "open_relay")


def test_an_older_run_that_settles_after_a_newer_one_does_not_become_the_state(server):
    older = running_run(server)
    runs.finish(older.pk, accepted_report(), awaited=[factories.TOKEN])
    newer = running_run(server)
    runs.finish(newer.pk, report("secure"))
    assert state_of(server) == (newer.pk, "secure")

    assert finalise(older.pk)  # the older run's wait ends after the newer run finished
    assert state_of(server) == (newer.pk, "secure")

    record_message([delivery_of(older)])  # and a late delivery upgrades it: still not the state
    older.refresh_from_db()
    assert (older.verdict, older.upgraded_late) == ("open_relay", True)
    assert state_of(server) == (newer.pk, "secure")


def test_a_late_delivery_to_the_latest_run_upgrades_the_state_and_marks_the_run(server):
    run = running_run(server)
    runs.finish(run.pk, accepted_report(), awaited=[factories.TOKEN])
    finalise(run.pk)

    record_message([delivery_of(run)])

    run.refresh_from_db()
    assert (run.verdict, run.upgraded_late) == ("open_relay", True)
    assert state_of(server) == (run.pk, "open_relay")


def test_a_failed_or_interrupted_run_leaves_the_state_as_it_was(server):
    done = factories.make_run(server, verdict="secure", report=report("secure"))
    runs.fail(running_run(server).pk, "broken")
    runs.interrupt(running_run(server).pk, "stopped", report=report("open_relay"))

    assert state_of(server) == (done.pk, "secure")


def test_the_migration_fills_the_state_of_existing_servers(department):
    server = factories.make_server(department)
    plain = factories.make_server(department, target="new.example.edu")
    listed = report("inconclusive", checks=[check("dnsbl", "fail")])
    TestRun.objects.create(
        server=server, status=Status.DONE, verdict="secure", probe_run_id="a1", report=report()
    )
    latest = TestRun.objects.create(
        server=server, status=Status.DONE, verdict="inconclusive", probe_run_id="a2", report=listed
    )
    TestRun.objects.create(server=server, status=Status.FAILED, probe_run_id="a3")
    MailServer.objects.update(latest_run=None, latest_verdict="", blocklisted=False)

    migration.fill_state(apps, None)

    server.refresh_from_db()
    assert (server.latest_run, server.latest_verdict, server.blocklisted) == (latest, "inconclusive", True)
    assert state_of(plain) == (None, "")


# ---- read in a constant number of queries ----


def registered(department, numbers: range) -> list[MailServer]:
    """Servers of the department numbered `numbers`, each with two runs, every third one running now."""
    servers = []
    for number in numbers:
        server = factories.make_server(department, target=f"mx{number}.example.edu")
        factories.make_run(server, verdict="secure", report=report("secure"))
        factories.make_run(server, verdict="open_relay", report=report("open_relay"))
        if number % 3 == 0:
            running_run(server)
        servers.append(server)
    return servers


def queries_for(user, url: str) -> int:
    client = client_for(user)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


PAGES = {
    "overview": lambda department, server: reverse("relaytests:overview"),
    "overview filtered": lambda department, server: reverse("relaytests:overview") + "?verdict=open_relay",
    "department": lambda department, server: reverse("relaytests:department", args=[department.slug]),
    "home": lambda department, server: reverse("relaytests:home"),
    "server": lambda department, server: server.get_absolute_url(),
}
# Session and user, then the page's own: counts, counts 30 days ago, page count, the page, the week's
# changes (overview); the department, the member's alert preference, page count, page (department); the
# server, latest run, run in progress, page count, runs, their parts from other vantages, changes (server).
QUERIES = {"overview": 7, "overview filtered": 7, "department": 6, "home": 4, "server": 9}


@pytest.mark.parametrize("page", PAGES)
def test_each_page_takes_the_same_number_of_queries_for_3_or_30_servers(
    page, department, member, staff, django_assert_num_queries
):
    client = client_for(staff if page.startswith("overview") else member)
    few = registered(department, range(3))
    url = PAGES[page](department, few[0])
    with django_assert_num_queries(QUERIES[page]):
        client.get(url)

    registered(department, range(3, 30))
    for _ in range(27):
        factories.make_run(few[0], verdict="secure", report=report("secure"))  # and a longer history

    cache.clear()  # the counts of 30 days ago are counted again, as on the next day
    with django_assert_num_queries(QUERIES[page]):
        client.get(url)


@pytest.mark.parametrize("page", ["overview", "overview filtered", "department"])
def test_a_page_of_servers_is_counted_without_joining_the_departments(page, department, member, staff):
    registered(department, range(3))
    client = client_for(staff if page.startswith("overview") else member)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(PAGES[page](department, None)).status_code == 200

    [count] = [q["sql"] for q in queries if 'COUNT(*) AS "__count"' in q["sql"] and "mailserver" in q["sql"]]
    assert "JOIN" not in count


def test_the_counts_of_30_days_ago_are_counted_once_a_day(department, staff, django_assert_num_queries):
    def open_relay_since_a_month() -> None:
        server = factories.make_server(department, target=f"mx{MailServer.objects.count()}.example.edu")
        run = factories.make_run(server, verdict="open_relay", report=report("open_relay"))
        month_ago = timezone.now() - timedelta(days=31)
        MailServer.objects.filter(pk=server.pk).update(created_at=month_ago)
        TestRun.objects.filter(pk=run.pk).update(created_at=month_ago)

    open_relay_since_a_month()
    client = client_for(staff)
    assert "30 days ago: 1<" in client.get(reverse("relaytests:overview")).content.decode()

    open_relay_since_a_month()  # news to the count of that day only once the cache has let it go
    with django_assert_num_queries(QUERIES["overview"] - 1):
        again = client.get(reverse("relaytests:overview"))
    assert "30 days ago: 1<" in again.content.decode()
    cache.clear()
    assert "30 days ago: 2<" in client.get(reverse("relaytests:overview")).content.decode()


def test_the_pages_read_no_report(department, member, staff):
    registered(department, range(3))
    server = department.servers.first()
    urls = [
        reverse("relaytests:overview"),
        reverse("relaytests:department", args=[department.slug]),
        reverse("relaytests:home"),
        server.get_absolute_url(),
    ]
    for url in urls:
        client = client_for(staff if "overview" in url else member)
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        selects = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
        assert not [sql for sql in selects if '"report"' in sql], url


# ---- sorted, filtered and paginated in the database ----


def test_the_overview_pages_the_worst_first_and_keeps_the_filter(department, staff, settings):
    for number in range(55):
        server = factories.make_server(department, target=f"mx{number:02}.example.edu")
        verdict = "open_relay" if number >= 52 else "secure"
        factories.make_run(server, verdict=verdict, report=report(verdict))
    client = client_for(staff)

    first = client.get(reverse("relaytests:overview"))
    second = client.get(reverse("relaytests:overview") + "?page=2")
    only_secure = client.get(reverse("relaytests:overview") + "?verdict=secure&page=2")

    assert [s.target for s in first.context["rows"]][:3] == [
        "mx52.example.edu",
        "mx53.example.edu",
        "mx54.example.edu",
    ]
    assert len(first.context["rows"]) == 50 and len(second.context["rows"]) == 5
    assert 'href="?page=2" rel="next"' in first.content.decode()
    assert [s.target for s in only_secure.context["rows"]] == ["mx50.example.edu", "mx51.example.edu"]
    assert 'href="?verdict=secure&amp;page=1" rel="prev"' in only_secure.content.decode()


def test_the_history_shows_25_runs_a_page_newest_first(server, member):
    made = [factories.make_run(server, verdict="secure", report=report("secure")) for _ in range(30)]
    client = client_for(member)

    first = client.get(server.get_absolute_url()).content.decode()
    second = client.get(server.get_absolute_url() + "?page=2").content.decode()

    def listed(page: str) -> list[int]:
        return [int(pk) for pk in re.findall(r'<tr>\s*<td><a href="/runs/(\d+)/">', page)]

    assert listed(first) == [run.pk for run in reversed(made)][:25]
    assert listed(second) == [run.pk for run in reversed(made)][25:]
    assert "Page 1 of 2" in first and 'href="?page=2" rel="next"' in first


# ---- seeding a database for the benchmark ----


@pytest.mark.parametrize("runs", [7, 9])  # 9: whole rounds, which PostgreSQL copies in the database
def test_seedportal_adds_servers_and_runs_with_each_servers_state_from_its_newest_run(runs):
    call_command("seedportal", servers=3, runs=runs, member="bench", stdout=StringIO())

    assert (MailServer.objects.count(), TestRun.objects.count()) == (3, runs)
    assert TestRun.objects.values("probe_run_id").distinct().count() == runs
    for server in MailServer.objects.all():
        newest = server.runs.order_by("-pk").first()
        assert (server.latest_run, server.latest_verdict) == (newest, newest.verdict)
        assert server.last_tested_at == newest.created_at == server.runs.latest("created_at").created_at
        assert server.certificate_expires_at is not None
        assert server.created_at <= server.runs.earliest("created_at").created_at
    assert 10_000 < len(json.dumps(TestRun.objects.first().report)) < 16_000  # about an engine report's size
