"""How long the dashboards, a department's page, a server's page and a run's page (and the status it
polls) take with many servers and runs, and a Prometheus scrape of /metrics.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/relaytest python benchmarks/dashboards.py \\
        [--servers 5000] [--runs 50000] [--repeat 20] [--keep]

It makes a throw-away test database (Django's test database of DATABASE_URL, SQLite by default),
seeds it with `manage.py seedportal`, then asks each page through Django's test client in this
process, `--repeat` times, and prints its p50 and p95 (milliseconds), its number of queries and the
size of its HTML. It also prints the average stored size of a report before and after trimming
(`relaytests.evidence`). With --keep the seeded database stays, and the next run with --keep
measures it without seeding again (on PostgreSQL `dropdb test_<name>` removes it). Not a test:
figures to compare between changes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django

django.setup()

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from relaytests.models import Department, MailServer, TestRun


def pages() -> dict[str, str]:
    department = Department.objects.order_by("pk").first()
    server = MailServer.objects.filter(department=department).order_by("pk").first()
    return {
        "overview": reverse("relaytests:overview"),
        "overview, open relays": reverse("relaytests:overview") + "?verdict=open_relay",
        "overview, page 20": reverse("relaytests:overview") + "?page=20",
        "home (member)": reverse("relaytests:home"),
        "department": reverse("relaytests:department", args=[department.slug]),
        "server": server.get_absolute_url(),
        "run": server.latest_run.get_absolute_url(),
        "run status": reverse("relaytests:run-status", args=[server.latest_run_id]),
        "metrics (Prometheus)": reverse("metrics"),  # from loopback, as the test client is
    }


def measure(client: Client, url: str, repeat: int) -> tuple[float, float, int, int]:
    client.get(url)  # warm: templates compiled, connection open
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
    return statistics.median(times), p95, len(queries), len(response.content)


def report_sizes() -> tuple[float, float]:
    """Average stored size of a report (bytes, as the database keeps it) before and after trimming."""
    from relaytests.evidence import trimmed_report

    run = TestRun.objects.order_by("pk").first()
    if connection.vendor != "postgresql":
        import json

        return len(json.dumps(run.report)), len(json.dumps(trimmed_report(run.report)))
    with connection.cursor() as cursor:
        cursor.execute("SELECT avg(pg_column_size(report)) FROM relaytests_testrun")
        before = float(cursor.fetchone()[0])
        TestRun.objects.filter(pk=run.pk).update(report=trimmed_report(run.report))
        cursor.execute("SELECT pg_column_size(report) FROM relaytests_testrun WHERE id = %s", [run.pk])
        after = float(cursor.fetchone()[0])
    return before, after


def main(servers: int, runs: int, repeat: int, keep: bool) -> None:
    # Not setup_test_environment(): its template instrumentation would be timed too.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    name = connection.creation.create_test_db(verbosity=0, keepdb=keep, serialize=False)
    try:
        seed(servers, runs)
        staff, _ = get_user_model().objects.get_or_create(username="central", is_staff=True)
        member = get_user_model().objects.get(username="bench")
        clients = {}
        for user in (staff, member):
            clients[user] = Client()
            clients[user].force_login(user)
        for page, url in pages().items():
            client = clients[staff if page.startswith("overview") else member]
            p50, p95, queries, size = measure(client, url, repeat)
            print(
                f"{page:24} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {queries:3} queries  {size / 1024:6.1f} KB"
            )
        before, after = report_sizes()
        size = f"{before / 1024:.1f} KB a run, {after / 1024:.1f} KB trimmed"
        print(f"seeded report stored: {size} (repetitive: compresses more than an engine's)")
    finally:
        if not keep:
            connection.creation.destroy_test_db(name, verbosity=0)


def seed(servers: int, runs: int) -> None:
    """Seed the database unless a run with --keep left it seeded (then measure what is there)."""
    if MailServer.objects.exists():
        print(
            f"{connection.vendor}: {MailServer.objects.count()} servers, {TestRun.objects.count()} runs kept"
        )
        return
    started = time.perf_counter()
    call_command("seedportal", servers=servers, runs=runs, member="bench", verbosity=0)
    print(
        f"{connection.vendor}: seeded {servers} servers, {runs} runs in {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--keep", action="store_true", help="keep the seeded database, and measure it next time"
    )
    arguments = parser.parse_args()
    main(arguments.servers, arguments.runs, arguments.repeat, arguments.keep)
