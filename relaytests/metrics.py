"""Prometheus metrics at /metrics, computed from the database at each scrape.

Nothing is counted in the processes: every figure is a query (a fixed number of them per scrape,
however many runs there are), so any number of gunicorn processes answer alike and need no shared
multiprocess directory. Only configured networks, or a bearer token, may scrape; anyone else gets the
404 of a page that does not exist.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from datetime import timedelta

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import Http404, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from relaytests import schedule
from relaytests.models import Alert, CanaryDelivery, TestRun

# The histograms cover the runs of this window, so that they show how the portal does now.
RECENT_HOURS = 24
RECENT = timedelta(hours=RECENT_HOURS)
# Bucket bounds in seconds. A run waits for a worker from seconds (an idle pool) to hours (a backlog;
# the reaper ends it after RELAYTEST_QUEUED_STALE_AFTER, 6 h); it takes about a minute, up to
# RELAYTEST_RUN_DEADLINE (900) and the task's soft limit (1200).
QUEUE_WAIT_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 6 * 3600)
DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1200)


class DatabaseCollector:
    """The portal's figures as Prometheus metric families, read from the database when scraped."""

    def collect(self):
        # By creation time, which is indexed: a scrape reads a day's runs, not the table.
        started = TestRun.objects.filter(created_at__gte=timezone.now() - RECENT, started_at__isnull=False)
        yield runs_by_status_and_verdict()
        yield histogram(
            "relaytest_run_queue_wait_seconds",
            f"Seconds from a run's creation to its start, runs created in the last {RECENT_HOURS} hours.",
            started,
            F("started_at") - F("created_at"),
            QUEUE_WAIT_BUCKETS,
        )
        yield histogram(
            "relaytest_run_duration_seconds",
            f"Seconds from a run's start to its end, runs created in the last {RECENT_HOURS} hours.",
            started.filter(finished_at__isnull=False),
            F("finished_at") - F("started_at"),
            DURATION_BUCKETS,
        )
        yield counter(
            "relaytest_canary_deliveries",
            "Canary tokens that arrived in test messages.",
            CanaryDelivery.objects,
        )
        yield counter(
            "relaytest_alerts_sent", "Alert mails sent.", Alert.objects.filter(sent_at__isnull=False)
        )
        yield GaugeMetricFamily(
            "relaytest_servers_due",
            "Servers the schedule would re-test now (due, no run queued or running).",
            value=schedule.due_servers().count(),
        )


def runs_by_status_and_verdict() -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "relaytest_runs", "Runs by status and verdict (empty: none yet).", labels=["status", "verdict"]
    )
    rows = TestRun.objects.order_by().values("status", "verdict").annotate(runs=Count("pk"))
    for row in rows:
        family.add_metric([row["status"], row["verdict"]], row["runs"])
    return family


def histogram(name: str, documentation: str, runs, elapsed, bounds) -> HistogramMetricFamily:
    """One query: how many of the runs took at most each bound (cumulative, as Prometheus wants), all
    of them, and the seconds they took in all."""
    elapsed = ExpressionWrapper(elapsed, output_field=DurationField())
    counts = {f"le_{bound}": Count("pk", filter=Q(elapsed__lte=timedelta(seconds=bound))) for bound in bounds}
    figures = runs.annotate(elapsed=elapsed).aggregate(**counts, count=Count("pk"), sum=Sum("elapsed"))
    buckets = [(floatToGoString(bound), figures[f"le_{bound}"]) for bound in bounds] + [
        ("+Inf", figures["count"])
    ]
    total = figures["sum"] or timedelta(0)
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=total.total_seconds())


def counter(name: str, documentation: str, rows) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=rows.count())


REGISTRY = CollectorRegistry()
REGISTRY.register(DatabaseCollector())


def may_scrape(request) -> bool:
    """From PORTAL_METRICS_NETWORKS (the client's address as the sign-in lockout sees it, behind a
    proxy too), or with PORTAL_METRICS_TOKEN as a bearer token."""
    token = settings.PORTAL_METRICS_TOKEN
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(presented.encode(), token.encode()):
        return True
    try:
        # None when there is no usable address; ipware gives ::ffff:127.0.0.1 as 127.0.0.1.
        address = ipaddress.ip_address(get_client_ip_address(request) or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network) for network in settings.PORTAL_METRICS_NETWORKS)


def scrapers_only(view):
    """Anyone who may not scrape gets 404 whatever the method, so a refused client learns nothing."""

    @functools.wraps(view)
    def checked(request):
        if not may_scrape(request):
            raise Http404
        return view(request)

    return checked


@csrf_exempt  # it changes nothing, and the CSRF check's 403 would tell a refused client the page exists
@never_cache
@scrapers_only
@require_safe
def metrics(request) -> HttpResponse:
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
