"""How many servers the scheduled re-test sweep queues per second of its own time.

    [DATABASE_URL=postgres://...] python benchmarks/schedule_sweep.py [--servers 5000] [--due 1000]

It makes a throw-away test database (Django's test database of DATABASE_URL, SQLite by default),
seeds `--servers` servers with one finished run each (`manage.py seedportal`), each on an address of
its own, makes `--due` of them due, and times one sweep (`tasks.schedule_retests`) with the cap at
`--due`: every due server gets its run, created by the Test button's code and published once committed
(to a stand-in for the broker, so that the figure is the sweep's, not Redis's). Then it times a sweep
that finds nothing due, the cost of most sweeps. Not a test: figures to compare between changes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django

django.setup()

from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from relaytests import tasks
from relaytests.models import MailServer, TestRun


class Published:
    id = "benchmark"


def stand_in_broker(args, **options) -> Published:
    return Published()


def make_due(due: int) -> None:
    """Every server on an address of its own, tested a day ago; `due` of them tested over a week ago."""
    now = timezone.now()
    servers = list(MailServer.objects.order_by("pk").only("pk"))
    for n, server in enumerate(servers):
        server.addresses = [f"10.{n // 62500}.{n // 250 % 250}.{n % 250 + 1}"]
        server.last_tested_at = now - (timedelta(days=8) if n < due else timedelta(days=1))
    MailServer.objects.bulk_update(servers, ["addresses", "last_tested_at"], batch_size=2000)
    for server in servers:  # the runs test the same addresses as their servers
        TestRun.objects.filter(server=server).update(addresses=server.addresses)


def timed_sweep() -> tuple[int, float]:
    started = time.perf_counter()
    queued = tasks.schedule_retests.apply().get()
    return queued, time.perf_counter() - started


def main(servers: int, due: int) -> None:
    name = connection.creation.create_test_db(verbosity=0)
    try:
        call_command("seedportal", servers=servers, runs=servers, verbosity=0)
        make_due(due)
        settings.RELAYTEST_RETEST_EVERY = 7 * 24 * 3600
        settings.RELAYTEST_SCHEDULE_MAX_QUEUED = due
        tasks.run_suite.apply_async = stand_in_broker
        queued, seconds = timed_sweep()
        print(
            f"{connection.vendor}: {servers} servers, {due} due: queued {queued} in {seconds:.2f} s, "
            f"{queued / seconds:.0f} servers scheduled per second of sweep"
        )
        settings.RELAYTEST_SCHEDULE_MAX_QUEUED = 2 * due  # room, but every due server has its run now
        _, idle = timed_sweep()
        print(f"a sweep with nothing due: {idle * 1000:.1f} ms")
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=5000)
    parser.add_argument("--due", type=int, default=1000)
    arguments = parser.parse_args()
    main(arguments.servers, arguments.due)
