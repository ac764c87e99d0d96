"""/metrics: who may scrape it, and that its figures are the database's, in a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from relaytests.models import Alert, CanaryDelivery, MailServer, TestRun
from tests.portal import factories

pytestmark = pytest.mark.django_db

OUTSIDE = "198.51.100.9"
TOKEN = "a metrics token 42"


def scrape(**headers):
    return Client().get("/metrics", **headers)


def samples(response) -> dict[tuple[str, frozenset], float]:
    """Every sample of the scrape by its name and labels."""
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain; version=")
    families = text_string_to_metric_families(response.content.decode())
    return {(s.name, frozenset(s.labels.items())): s.value for family in families for s in family.samples}


def run_at(server, created_ago: timedelta, wait: float, took: float, **fields) -> TestRun:
    """A finished run created `created_ago`, which waited `wait` seconds for a worker and took `took`."""
    run = factories.make_run(server, **fields)
    created = timezone.now() - created_ago
    started = created + timedelta(seconds=wait)
    finished = started + timedelta(seconds=took)
    TestRun.objects.filter(pk=run.pk).update(created_at=created, started_at=started, finished_at=finished)
    return run


@pytest.fixture
def portal_data(department):
    """Two recent runs of one server, an old run and a queued one of another, a running one of a third,
    a server due for its re-test, two canary deliveries, and two alerts sent of three."""
    tested = factories.make_server(department, "a.physics.example.edu")
    busy = factories.make_server(department, "b.physics.example.edu")
    due = factories.make_server(department, "c.physics.example.edu")
    MailServer.objects.filter(pk=due.pk).update(created_at=timezone.now() - timedelta(days=8))
    run_at(tested, timedelta(hours=1), wait=30, took=90, verdict="secure")
    relay = run_at(tested, timedelta(minutes=30), wait=2, took=500, verdict="open_relay")
    run_at(busy, timedelta(days=3), wait=4000, took=100, verdict="secure")
    factories.make_run(busy, status=TestRun.Status.QUEUED)
    running = factories.make_run(factories.make_server(department, "d.physics.example.edu"), status="running")
    TestRun.objects.filter(pk=running.pk).update(started_at=running.created_at + timedelta(seconds=10))
    for token in ("t1", "t2"):
        CanaryDelivery.objects.create(run=relay, vector_id="plain", token=token, message_key="m1")
    for sent_at in (timezone.now(), timezone.now(), None):
        Alert.objects.create(server=tested, run=relay, changes=[], sent_at=sent_at)


def test_a_scrape_reports_the_databases_figures(portal_data):
    figures = samples(scrape())

    def value(name, **labels):
        return figures[(name, frozenset(labels.items()))]

    def buckets(name, *bounds):
        return [value(f"{name}_bucket", le=le) for le in (*bounds, "+Inf")]

    assert value("relaytest_runs", status="done", verdict="secure") == 2
    assert value("relaytest_runs", status="done", verdict="open_relay") == 1
    assert value("relaytest_runs", status="queued", verdict="") == 1
    assert value("relaytest_runs", status="running", verdict="") == 1
    # Only the runs created in the last 24 hours that started: 30, 2 and 10 seconds' wait; of those,
    # the two that finished took 90 and 500 seconds.
    wait = "relaytest_run_queue_wait_seconds"
    assert buckets(wait, "1.0", "5.0", "15.0", "60.0") == [0, 1, 2, 3, 3]
    assert value(f"{wait}_count") == 3
    assert value(f"{wait}_sum") == pytest.approx(42)
    took = "relaytest_run_duration_seconds"
    assert buckets(took, "60.0", "120.0", "300.0", "600.0") == [0, 1, 1, 2, 2]
    assert value(f"{took}_count") == 2
    assert value(f"{took}_sum") == pytest.approx(590)
    assert value("relaytest_canary_deliveries_total") == 2
    assert value("relaytest_alerts_sent_total") == 2
    assert value("relaytest_servers_due") == 1  # c: the tested one is not due, the busy one has a run queued


def test_an_empty_portal_scrapes_as_zeros(db):
    figures = samples(scrape())
    assert figures[("relaytest_run_duration_seconds_count", frozenset())] == 0
    assert figures[("relaytest_run_duration_seconds_sum", frozenset())] == 0
    assert figures[("relaytest_alerts_sent_total", frozenset())] == 0


def test_a_scrape_makes_as_many_queries_with_data_as_without(db, department):
    with CaptureQueriesContext(connection) as empty:
        samples(scrape())
    server = factories.make_server(department)
    for hours in range(1, 6):
        run_at(server, timedelta(hours=hours), wait=hours, took=60 * hours, verdict="secure")
    factories.make_run(factories.make_server(department, "b.physics.example.edu"), status="running")
    with CaptureQueriesContext(connection) as full:
        samples(scrape())
    assert len(full) == len(empty) == 6  # as the README says


def test_an_address_outside_the_metrics_networks_gets_404(db):
    assert scrape(REMOTE_ADDR=OUTSIDE).status_code == 404


def test_only_a_scraper_learns_that_other_methods_are_not_allowed(db):
    client = Client(enforce_csrf_checks=True)  # as a browser or a script meets the portal
    assert client.post("/metrics", REMOTE_ADDR=OUTSIDE).status_code == 404
    assert client.post("/metrics").status_code == 405


def test_the_configured_networks_replace_loopback(db, settings):
    settings.PORTAL_METRICS_NETWORKS = ["198.51.100.0/24"]
    assert scrape(REMOTE_ADDR=OUTSIDE).status_code == 200
    assert scrape(REMOTE_ADDR="127.0.0.1").status_code == 404


def test_an_ipv4_mapped_loopback_address_is_loopback_and_no_address_is_refused(db):
    assert scrape(REMOTE_ADDR="::ffff:127.0.0.1").status_code == 200
    assert scrape(REMOTE_ADDR="").status_code == 404


def test_behind_a_proxy_the_forwarded_client_counts_not_the_proxy(db, settings):
    settings.AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
    settings.AXES_IPWARE_PROXY_ORDER = "right-most"
    assert scrape(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=OUTSIDE).status_code == 404


def test_the_token_lets_any_address_scrape(db, settings):
    settings.PORTAL_METRICS_TOKEN = TOKEN
    assert scrape(REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert scrape(REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer another token").status_code == 404
    assert scrape(REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=TOKEN).status_code == 404  # no scheme
    assert scrape(REMOTE_ADDR=OUTSIDE).status_code == 404


def test_without_a_token_set_an_empty_bearer_token_is_refused(db):
    assert scrape(REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer ").status_code == 404
