"""A run from several vantages (RELAYTEST_VANTAGES): one part per further vantage, each on its own
queue, credited with its own deliveries, reaped like a run, never standing for the server; the run's
page shows each view and the finding when the server relays for the clients of one. Then the whole
flow with two real workers whose source addresses differ, against a real Postfix that trusts one.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
import redis
from asgiref.sync import sync_to_async
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from relaytests import runs
from relaytests.deliveries import record_message
from relaytests.evidence import trim_old_evidence
from relaytests.models import TestRun, VerdictChange
from relaytests.probe.receiver import CanaryReceiver
from relaytests.tasks import WRONG_VANTAGE, enqueue_run, run_suite
from relaytests.vantages import inside_relays, views_of
from tests.fakes.smtp import BEHAVIOURS, FakeSMTPServer
from tests.portal.conftest import client_for
from tests.portal.factories import accepted_report, delivery_of, host, make_run, report
from tests.portal.test_api import api_for
from tests.portal.test_exports import rows_of
from tests.portal.worker import REDIS_URL, celery_worker, loopback_server, publishing_to
from tests.postfix import PROBE_SOURCE, RECEIVER_ADDRESS, TRUSTED_SOURCE, postfix_instance

Status = TestRun.Status
ARRIVES_WITHIN = 120.0  # two worker processes, a Postfix queue run: a bound for a broken setup


@pytest.fixture
def two_vantages(settings):
    settings.RELAYTEST_VANTAGES = ["outside", "inside"]
    return settings


def started(server, user=None) -> TestRun:
    return runs.start(server, user, TestRun.Trigger.MANUAL)


def part_of(run: TestRun) -> TestRun:
    [part] = run.parts()
    return part


# ---- a run and its parts ----


@pytest.mark.django_db
def test_a_run_has_one_part_per_further_vantage_that_counts_nowhere_as_a_run(two_vantages, member, server):
    run = started(server, member)

    part = part_of(run)
    assert (run.vantage, part.vantage, part.part_of) == ("outside", "inside", run)
    assert part.probe_run_id != run.probe_run_id  # its deliveries are its own
    assert (part.status, part.addresses, part.trigger) == (Status.QUEUED, run.addresses, run.trigger)
    assert list(server.runs.all()) == [run]
    assert list(TestRun.objects.all()) == [run]
    assert TestRun.with_parts.count() == 2
    two_vantages.RELAYTEST_RUNS_PER_HOUR = 2
    runs.fail(run.pk, "ended")
    started(server, member)  # the part of the first run counted no second run against the hourly cap


@pytest.mark.django_db
def test_one_vantage_makes_runs_without_parts(member, server, settings):
    assert settings.RELAYTEST_VANTAGES == ["outside"]

    assert started(server, member).parts() == []


@pytest.mark.django_db
def test_a_queued_part_is_no_second_active_run_of_its_server(two_vantages, member, server):
    run = started(server, member)
    runs.fail(run.pk, "ended")  # the part is still queued

    assert started(server, member).parts()  # not refused as "already queued or running"

    with pytest.raises(runs.AlreadyActive):
        started(server, member)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("redis_broker")
def test_the_run_and_each_part_go_to_the_queue_of_their_vantage(two_vantages, server):
    with publishing_to(REDIS_URL):
        run = started(server)
        assert enqueue_run(run)

    broker = redis.Redis.from_url(REDIS_URL)
    assert (broker.llen("probe.outside"), broker.llen("probe.inside")) == (1, 1)
    assert all(r.celery_task_id for r in TestRun.with_parts.all())


@pytest.mark.django_db(transaction=True)
def test_a_worker_at_another_vantage_refuses_the_part_with_the_reason(two_vantages, server):
    part = part_of(started(server))
    two_vantages.RELAYTEST_VANTAGE = "outside"

    run_suite.apply((part.pk,))

    part.refresh_from_db()
    assert part.status == Status.FAILED
    assert part.status_reason == WRONG_VANTAGE.format(wanted="inside", actual="outside")
    assert "consume the queue probe.inside" in part.status_reason


@pytest.mark.django_db
def test_a_part_no_worker_takes_is_reaped_with_its_vantage_and_shown_inconclusive(
    two_vantages, member, server
):
    run = started(server, member)
    TestRun.with_parts.update(created_at=timezone.now() - timedelta(hours=7))
    runs.fail(run.pk, "ended")

    assert runs.reap_stale(300, 6 * 3600) == 1

    part = part_of(run)
    assert part.status == Status.INTERRUPTED
    assert "No worker at the inside vantage" in part.status_reason
    assert "consuming the queue probe.inside?" in part.status_reason
    [_, view] = views_of(run)
    assert (view.verdict, view.reason) == ("inconclusive", f"This view has no verdict: {part.status_reason}")
    page = client_for(member).get(run.get_absolute_url()).content.decode()
    row = re.search(r'<tr class="view view-inside">.*?</tr>', page, re.S)[0]
    assert '<span class="verdict verdict-inconclusive">Inconclusive</span>' in row
    assert f'<span class="view-reason">{escape(view.reason)}</span>' in row


@pytest.mark.django_db
def test_a_delivery_for_a_part_is_credited_to_the_part_and_leaves_the_servers_state(two_vantages, server):
    run = started(server)
    part = part_of(run)
    TestRun.objects.filter(pk=run.pk).update(status=Status.DONE, verdict="secure", report=report("secure"))
    TestRun.with_parts.filter(pk=part.pk).update(
        status=Status.AWAITING_DELIVERY, verdict="accepts_relay", report=accepted_report()
    )
    run.refresh_from_db()
    run.record_verdict()

    [row] = record_message([delivery_of(part)])

    part.refresh_from_db()
    server.refresh_from_db()
    assert (row.run, part.status, part.verdict) == (part, Status.DONE, "open_relay")
    assert (server.latest_run, server.latest_verdict) == (run, "secure")  # the run's own view stands
    assert list(VerdictChange.objects.values_list("run", "new_verdict")) == [(run.pk, "secure")]


# ---- the page ----


def with_part(server, run_verdict: str, part_verdict: str, *, software: str = "postfix") -> TestRun:
    run = make_run(server, verdict=run_verdict, report=report(run_verdict, hosts=[host(verdict=run_verdict)]))
    inside = report(part_verdict, hosts=[host(verdict=part_verdict)])
    inside["probe"].update(source_address="10.20.0.5", vantage="inside")
    inside["hosts"][0]["software"]["family"] = software
    make_run(server, verdict=part_verdict, report=inside, vantage="inside", part_of=run)
    return run


@pytest.mark.django_db
def test_the_page_shows_each_view_and_the_finding_when_inside_relays(member, server, settings):
    settings.RELAYTEST_INTERNAL_NETWORKS = ["10.0.0.0/8"]
    run = with_part(server, "secure", "open_relay")

    page = client_for(member).get(run.get_absolute_url()).content.decode()

    views = re.search(r'<section class="vantage-views".*?</section>', page, re.S)[0]
    assert "outside (this run's verdict)" in views
    assert re.search(r'<tr class="view view-inside">.*?from 10\.20\.0\.5.*?Open relay', views, re.S)
    assert "<h3>Relays for clients inside 10.0.0.0/8</h3>" in views
    assert "is open relay from there, secure from outside" in views
    assert "mynetworks" in views  # the advice for the Postfix that the inside view found
    assert '<h2 id="verdict-heading">Secure</h2>' in page  # the run's verdict is the outside one


@pytest.mark.django_db
@pytest.mark.parametrize(
    "run_verdict, part_verdict",
    [("open_relay", "open_relay"), ("secure", "secure"), ("secure", "inconclusive")],
)
def test_no_finding_when_the_inside_view_relays_no_more(member, server, run_verdict, part_verdict):
    run = with_part(server, run_verdict, part_verdict)

    assert inside_relays(views_of(run)) == []
    assert "Relays for clients inside" not in client_for(member).get(run.get_absolute_url()).content.decode()


@pytest.mark.django_db
def test_the_finding_names_the_probes_address_when_no_internal_network_holds_it(server):
    [finding] = inside_relays(views_of(with_part(server, "secure", "accepts_relay", software="exim")))

    assert finding.title == "Relays for clients inside 10.20.0.5"
    assert "relay_from_hosts" in finding.advice


@pytest.mark.django_db
def test_a_part_has_its_own_page_that_names_its_run(member, server):
    run = with_part(server, "secure", "open_relay")
    part = part_of(run)

    page = client_for(member).get(part.get_absolute_url()).content.decode()

    assert "Test of " in page and ": the inside view</h1>" in page
    assert f'<a href="{run.get_absolute_url()}">run {run.pk}</a>' in page
    assert "Since last run" not in page


@pytest.mark.django_db
def test_the_page_stays_live_while_a_part_is_on_its_way(member, server):
    run = with_part(server, "secure", "secure")
    TestRun.with_parts.filter(part_of=run).update(status=Status.RUNNING, verdict="")

    state = client_for(member).get(f"{run.get_absolute_url()}status/").json()
    page = client_for(member).get(run.get_absolute_url()).content.decode()

    assert state["live"] is True
    assert state["version"] == "done:secure|running:"
    assert 'data-live="true"' in page and f'data-version="{state["version"]}"' in page
    assert "Waiting for the view from inside" in page


# ---- two workers, a real Postfix that relays for its trusted network ----


@pytest.mark.postfix
@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("redis_broker")
async def test_two_workers_see_a_campus_relay_closed_from_outside_and_open_from_inside(
    two_vantages, member, department
):
    two_vantages.RELAYTEST_CANARY_DOMAIN = "canary.test"
    probe = {
        "RELAYTEST_CANARY_DOMAIN": "canary.test",
        "RELAYTEST_CANARY_SECRET": two_vantages.RELAYTEST_CANARY_SECRET,
        "RELAYTEST_CANARY_WAIT": "60",
    }
    async with CanaryReceiver(
        "canary.test",
        two_vantages.RELAYTEST_CANARY_SECRET,
        sync_to_async(record_message),
        host=RECEIVER_ADDRESS,
        port=0,
    ) as receiver:
        with (
            postfix_instance(
                "campus", canary_domain="canary.test", canary_relay=(RECEIVER_ADDRESS, receiver.port)
            ) as instance,
            celery_worker(RELAYTEST_VANTAGE="outside", RELAYTEST_SOURCE_ADDRESS=PROBE_SOURCE, **probe),
            celery_worker(
                empty=False, RELAYTEST_VANTAGE="inside", RELAYTEST_SOURCE_ADDRESS=TRUSTED_SOURCE, **probe
            ),
            publishing_to(REDIS_URL),
        ):
            server = await sync_to_async(loopback_server)(department, instance.address, port=instance.port)
            run = await sync_to_async(started)(server, member)
            assert await sync_to_async(enqueue_run)(run)
            part = await sync_to_async(part_of)(run)
            await until_over(run, part)

    assert (run.status, run.verdict, run.report["probe"]["source_address"]) == (
        Status.DONE,
        "secure",
        PROBE_SOURCE,
    )
    assert (part.status, part.verdict, part.report["probe"]["vantage"]) == (
        Status.DONE,
        "open_relay",
        "inside",
    )
    assert part.report["probe"]["source_address"] == TRUSTED_SOURCE
    plain = next(v for v in part.report["hosts"][0]["vectors"] if v["id"] == "plain")
    assert (plain["delivered"], plain["delivery"]["peer_address"]) == (True, instance.address)
    page = await sync_to_async(lambda: client_for(member).get(run.get_absolute_url()).content.decode())()
    assert f"<h3>Relays for clients inside {TRUSTED_SOURCE}</h3>" in page
    assert "mynetworks" in page
    await server.arefresh_from_db()
    assert (server.latest_run_id, server.latest_verdict) == (run.pk, "secure")


async def until_over(*views: TestRun) -> None:
    async with asyncio.timeout(ARRIVES_WITHIN):
        for view in views:
            while True:
                await view.arefresh_from_db()
                if view.status == Status.DONE:
                    break
                await asyncio.sleep(0.2)


@pytest.mark.django_db(transaction=True)
def test_the_outside_worker_runs_the_run_and_leaves_its_part_to_the_inside(two_vantages, server):
    with FakeSMTPServer(BEHAVIOURS["closed"]) as fake:
        server.addresses, server.port, server.target = ["127.0.0.1"], fake.port, "127.0.0.1"
        server.kind = server.Kind.IP
        server.save()
        run = started(server)
        run_suite.apply((run.pk,))

    run.refresh_from_db()
    assert (run.status, run.verdict, run.report["probe"]["vantage"]) == (Status.DONE, "secure", "outside")
    assert part_of(run).status == Status.QUEUED  # its own worker, at the inside vantage, takes it


# ---- history, dashboards, API, evidence ----


@pytest.mark.django_db
def test_the_history_shows_each_runs_other_views_in_one_query(member, server, django_assert_max_num_queries):
    runs_with_parts = [with_part(server, "secure", "open_relay") for _ in range(3)]
    client = client_for(member)
    client.get(server.get_absolute_url())  # sessions and the like, once

    with django_assert_max_num_queries(12):
        page = client.get(server.get_absolute_url()).content.decode()

    rows = re.findall(r"<tr>\s*<td><a href=\"/runs/\d+/\">.*?</tr>", page, re.S)
    assert len(rows) == 3  # the parts are no rows of their own
    for run in runs_with_parts:
        assert f'<a class="other-view" href="{part_of(run).get_absolute_url()}">from inside:</a>' in page
    assert page.count('<span class="verdict verdict-open_relay">Open relay</span>') == 3


@pytest.mark.django_db
@pytest.mark.parametrize("run_verdict, marked", [("secure", True), ("accepts_relay", False)])
def test_the_dashboards_mark_a_server_that_relays_only_from_inside(staff, server, run_verdict, marked):
    with_part(server, run_verdict, "open_relay")

    for url in ("/overview/", f"/departments/{server.department.slug}/", server.get_absolute_url()):
        page = client_for(staff).get(url).content.decode()
        assert ('<span class="verdict verdict-relays-inside">Relays from inside</span>' in page) is marked


@pytest.mark.django_db
def test_the_api_names_each_runs_vantage_and_other_views_and_serves_a_parts_report(member, server):
    run = with_part(server, "secure", "open_relay")
    part = part_of(run)
    api = api_for(member)

    [listed] = api.get("/api/runs/").json()["results"]
    detail = api.get(f"/api/runs/{run.pk}/").json()
    part_report = api.get(f"/api/runs/{part.pk}/report/").json()

    assert listed["id"] == run.pk and listed == detail
    assert (detail["vantage"], detail["part_of"]) == ("outside", None)
    [view] = detail["other_views"]
    assert (view["id"], view["vantage"], view["status"], view["verdict"]) == (
        part.pk,
        "inside",
        "done",
        "open_relay",
    )
    assert view["page"].endswith(part.get_absolute_url())
    assert part_report["probe"]["vantage"] == "inside"
    assert api.get(f"/api/runs/{part.pk}/").json()["part_of"] == run.pk


@pytest.mark.django_db
def test_old_evidence_of_a_part_is_trimmed_unless_its_run_is_the_servers_latest(server):
    old = with_part(server, "secure", "open_relay")
    latest = with_part(server, "secure", "open_relay")
    TestRun.with_parts.update(finished_at=timezone.now() - timedelta(days=400))

    trim_old_evidence(180)

    assert part_of(old).evidence_trimmed
    assert not part_of(latest).evidence_trimmed


@pytest.mark.django_db
def test_the_history_export_has_a_column_per_further_vantage_and_the_overview_marks_inside_relays(
    two_vantages, staff, server
):
    run = with_part(server, "secure", "open_relay")
    client = client_for(staff)

    [row] = rows_of(client.get(reverse("relaytests:server-history-csv", args=[server.pk])))
    [listed] = rows_of(client.get(reverse("relaytests:overview-csv")))

    assert (row["run"], row["vantage"], row["verdict"], row["verdict_from_inside"]) == (
        str(run.pk),
        "outside",
        "secure",
        "open_relay",
    )
    assert listed["relays_only_from"] == "inside"


@pytest.mark.django_db
def test_only_parts_are_indexed_by_their_run_so_no_lookup_of_runs_reads_an_index_of_nulls():
    tables = {"sqlite": "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL",
              "postgresql": "SELECT indexdef FROM pg_indexes WHERE tablename = %s"}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(tables[connection.vendor], ["relaytests_testrun"])
        definitions = [row[0] for row in cursor.fetchall() if re.search(r'\("?part_of_id"?\)', row[0])]

    assert len(definitions) == 1
    assert re.search(r"WHERE \(?\"?part_of_id\"? IS NOT NULL", definitions[0])
