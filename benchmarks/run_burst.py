"""How long ten Tests pressed at once take to end, through the view, a real Celery worker and the database.

    TEST_REDIS_URL=redis://127.0.0.1:6379/11 python benchmarks/run_burst.py [--runs 10] [--concurrency 4]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/relaytest python benchmarks/run_burst.py

It makes a throw-away test database (Django's test database of DATABASE_URL, SQLite by default),
starts loopback fake SMTP servers (every third one an open relay, whose test messages never arrive,
so its run waits RELAYTEST_CANARY_WAIT=2 s for them), a Celery worker (prefork, --concurrency) on the
Redis database TEST_REDIS_URL, which it empties, and presses Test on each server through the view.
It prints, from the first press: when every run had left queued/running (probing over), when every
run was final, and the statuses. DNS goes to an empty server on loopback, as in the tests.
Not a test: figures to compare between changes to the run's bookkeeping.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections import Counter

import portal_setup  # noqa: F401  (first: the project, loopback DNS, Django on the test settings)
from django.db import connection
from django.test import Client
from django.test.utils import setup_test_environment
from django.urls import reverse

from relaytests.models import Department, Membership, TestRun
from tests.fakes.smtp import FakeSMTPServer
from tests.portal.worker import REDIS_URL, celery_worker, loopback_server, publishing_to

POLL = 0.05


def burst(runs: int, concurrency: int) -> dict:
    from django.contrib.auth.models import User

    user = User.objects.create_user("bench")
    department = Department.objects.create(name="Bench", slug="bench")
    Membership.objects.create(user=user, department=department)
    client = Client()
    client.force_login(user)
    with contextlib.ExitStack() as stack:
        fakes = [stack.enter_context(FakeSMTPServer("open" if i % 3 == 0 else "closed")) for i in range(runs)]
        servers = [loopback_server(department, port=fake.port) for fake in fakes]
        stack.enter_context(celery_worker("prefork", concurrency=concurrency, RELAYTEST_CANARY_WAIT="2"))
        stack.enter_context(publishing_to(REDIS_URL))
        started = time.perf_counter()
        for server in servers:
            client.post(reverse("relaytests:server-test", args=[server.pk]))
        submitted = time.perf_counter() - started
        probed = final = None
        while final is None:
            statuses = Counter(TestRun.objects.values_list("status", flat=True))
            elapsed = time.perf_counter() - started
            if probed is None and not (statuses["queued"] or statuses["running"]):
                probed = elapsed
            if probed is not None and not statuses["awaiting_delivery"]:
                final = elapsed
            time.sleep(POLL)
    return {"submitted_s": submitted, "probed_s": probed, "final_s": final, "statuses": dict(statuses)}


def main(runs: int, concurrency: int) -> None:
    setup_test_environment()
    name = connection.creation.create_test_db(verbosity=0)
    try:
        result = burst(runs, concurrency)
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)
    print(
        f"{connection.vendor}: {runs} runs, worker concurrency {concurrency}: "
        f"submitted in {result['submitted_s']:.2f} s, all probed after {result['probed_s']:.2f} s, "
        f"all final after {result['final_s']:.2f} s (canary wait 2 s); statuses {result['statuses']}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="Tests pressed at once (default 10)")
    parser.add_argument("--concurrency", type=int, default=4, help="worker processes (default 4)")
    arguments = parser.parse_args()
    main(arguments.runs, arguments.concurrency)
