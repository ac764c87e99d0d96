"""Runs through the real broker: Redis, and a Celery worker process started by the test.

The run is submitted the way an admin does (the Test button of the server page, as a member)
and finished by the worker against a loopback fake SMTP server.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from django.conf import settings
from django.urls import reverse

from relaytests import runs
from relaytests.models import TestRun
from relaytests.tasks import enqueue_run
from tests.fakes.smtp import LOCAL_DOMAIN, FakeSMTPServer
from tests.portal.factories import PASSWORD
from tests.portal.worker import (
    REDIS_URL,
    celery_worker,
    is_final,
    loopback_server,
    publishing_to,
    queued_run,
    wait_for_run,
)

Status = TestRun.Status

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_broker():
    with publishing_to(REDIS_URL):
        yield


def test_a_run_started_on_the_page_is_finished_by_a_worker(department, member, client, redis_broker):
    client.force_login(member)
    with FakeSMTPServer("closed") as fake, celery_worker() as worker:
        server = loopback_server(department, port=fake.port, mail_domain=LOCAL_DOMAIN)

        response = client.post(reverse("relaytests:server-test", args=[server.pk]))

        run = server.runs.get()
        assert response.url == run.get_absolute_url()
        run = wait_for_run(run, is_final, worker=worker)

    assert (run.status, run.verdict, run.trigger) == (Status.DONE, "secure", TestRun.Trigger.MANUAL)
    assert run.celery_task_id
    [host] = run.report["hosts"]
    assert (host["address"], host["port"], host["verdict"]) == ("127.0.0.1", fake.port, "secure")
    assert host["banner"].startswith("220 mx.dept.example.edu ESMTP Postfix")
    assert len(fake.seen.connections) == host["connections"]
    page = client.get(run.get_absolute_url())
    assert "Relay access denied" in page.content.decode()


README_EXAMPLE = re.compile(r"\*\*From the shell\.\*\*.*?```sh\n(.*?)```", re.S)


def test_the_readme_s_shell_example_makes_a_token_starts_a_test_and_reads_its_verdict(
    live_server, department, member, redis_broker
):
    script = README_EXAMPLE.search((settings.BASE_DIR / "README.md").read_text()).group(1)
    with FakeSMTPServer("closed") as fake, celery_worker() as worker:
        server = loopback_server(department, port=fake.port, mail_domain=LOCAL_DOMAIN)
        # What a reader changes: the portal's address, their server, their password (curl would ask).
        for example, here in {
            "PORTAL=https://relaytest.example.edu": f"PORTAL={live_server.url}",
            "SERVER=7": f"SERVER={server.pk}",
            '-u "$USER"': f'-u "{member.username}:$PASSWORD"',
            "sleep 5": "sleep 0.5",
        }.items():
            assert example in script
            script = script.replace(example, here)
        shell = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            env={**os.environ, "PASSWORD": PASSWORD},
            capture_output=True,
            text=True,
            timeout=120,
        )

        assert (shell.returncode, shell.stderr) == (0, ""), worker.output()
    assert shell.stdout == "secure\n"
    run = server.runs.get()
    assert (run.trigger, run.started_by, run.verdict) == (TestRun.Trigger.API, member, "secure")
    assert member.api_tokens.get().name == "my script"


def test_a_run_waits_while_another_run_holds_its_address(department, redis_broker):
    """One connection per host (address and port) across all workers: the second run starts after
    the first ends."""
    with FakeSMTPServer("closed") as fake, celery_worker(RELAYTEST_BUSY_RETRY_DELAY="1") as worker:
        holder = queued_run(
            loopback_server(department, "127.0.0.2", port=fake.port),
            status=Status.RUNNING,
            addresses=["127.0.0.1"],
        )
        run = queued_run(loopback_server(department, port=fake.port, mail_domain=LOCAL_DOMAIN))
        assert enqueue_run(run)
        wait_for_run(run, lambda _: "retry: Retry in" in worker.output(), worker=worker)
        assert fake.seen.connections == []

        runs.finish(holder.pk, {"verdict": "secure", "hosts": []})
        run = wait_for_run(run, is_final, worker=worker)

    holder.refresh_from_db()
    assert (run.status, run.verdict) == (Status.DONE, "secure")
    assert run.started_at > holder.finished_at
