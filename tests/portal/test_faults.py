"""Faults around a run: the broker down at submit, a worker killed mid-run, a run over its time limit.

Each ends in a clear state with a reason on the run's page, never a 500 and never a run stuck
in queued or running.
"""

from __future__ import annotations

import socket

import pytest
from django.db import transaction
from django.urls import reverse

from relaytests import runs
from relaytests.models import TestRun
from relaytests.tasks import TIME_LIMIT, enqueue_run, reap_stale_runs
from tests.fakes.smtp import LOCAL_DOMAIN, FakeSMTPServer
from tests.portal.worker import (
    REDIS_URL,
    celery_worker,
    loopback_server,
    publishing_to,
    queued_run,
    wait_for_run,
)

Status = TestRun.Status

pytestmark = pytest.mark.django_db(transaction=True)

# Answers the first relay attempts at once, then stalls every reply: the run is caught part-way.
STALLS_AFTER_ONE_VECTOR = "stalls-after-two-refusals"
# The probe waits for the stalled reply far longer than the test lasts.
PATIENT_PROBE = {"RELAYTEST_COMMAND_TIMEOUT": "900", "RELAYTEST_RUN_DEADLINE": "900"}


@pytest.fixture
def dead_broker():
    """A Redis URL on a loopback port where nothing listens: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with publishing_to(f"redis://127.0.0.1:{port}/0"):
        yield


def test_broker_unreachable_at_submit_fails_the_run_with_the_reason_on_the_page(
    department, member, client, dead_broker
):
    client.force_login(member)
    server = loopback_server(department)

    response = client.post(reverse("relaytests:server-test", args=[server.pk]), follow=True)

    run = server.runs.get()
    assert (run.status, run.status_reason) == (Status.FAILED, runs.BROKER_UNREACHABLE)
    assert response.status_code == 200
    assert response.redirect_chain == [(run.get_absolute_url(), 302)]
    assert runs.BROKER_UNREACHABLE in response.content.decode()


def test_broker_unreachable_at_commit_of_an_enclosing_transaction_still_fails_the_run(
    department, dead_broker
):
    run = queued_run(loopback_server(department))

    with transaction.atomic():
        assert enqueue_run(run)  # deferred to the commit: not known yet

    run.refresh_from_db()
    assert (run.status, run.status_reason) == (Status.FAILED, runs.BROKER_UNREACHABLE)


@pytest.mark.broker
def test_a_worker_killed_mid_run_leaves_an_interrupted_run_with_its_partial_report(department, settings):
    with FakeSMTPServer(STALLS_AFTER_ONE_VECTOR) as fake, publishing_to(REDIS_URL):
        server = loopback_server(department, port=fake.port, mail_domain=LOCAL_DOMAIN)
        earlier = queued_run(server, status=Status.DONE, verdict="secure")
        run = queued_run(server)
        with celery_worker(**PATIENT_PROBE) as worker:
            assert enqueue_run(run)
            run = wait_for_run(run, lambda r: _vectors_recorded(r) >= 1, worker=worker)
            worker.kill()
        partial = run.report

        settings.RELAYTEST_STALE_AFTER = 0  # the killed worker's last heartbeat is already too old
        assert reap_stale_runs() == 1

    run.refresh_from_db()
    assert (run.status, run.status_reason) == (Status.INTERRUPTED, runs.WORKER_LOST)
    assert run.report == partial and _vectors_recorded(run) >= 1
    assert run.finished_at is not None and run.verdict == ""
    assert list(server.runs.all()) == [run, earlier]


@pytest.mark.broker
def test_a_run_over_its_soft_time_limit_ends_interrupted_with_what_it_recorded(department, settings):
    settings.RELAYTEST_TASK_SOFT_LIMIT, settings.RELAYTEST_TASK_HARD_LIMIT = 3, 120  # sent with the task
    with FakeSMTPServer(STALLS_AFTER_ONE_VECTOR) as fake, publishing_to(REDIS_URL):
        run = queued_run(loopback_server(department, port=fake.port, mail_domain=LOCAL_DOMAIN))
        # Time limits need a pool that can interrupt the task: prefork, as `make run` uses.
        with celery_worker(pool="prefork", **PATIENT_PROBE) as worker:
            assert enqueue_run(run)
            run = wait_for_run(run, lambda r: not r.is_active, worker=worker)

    assert (run.status, run.status_reason) == (Status.INTERRUPTED, TIME_LIMIT.format(seconds=3))
    assert _vectors_recorded(run) >= 1


def _vectors_recorded(run: TestRun) -> int:
    return sum(len(host["vectors"]) for host in run.report.get("hosts", []))
