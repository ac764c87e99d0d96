"""The portal's canary receiver under load and under abuse, on the database the portal really uses.

A real receiver (the `canary` command's record function) on loopback, real SMTP clients, and the
test database as the portal has it (a file on SQLite, in WAL mode): fifty messages at once while a
run writes its progress, a retried message, a message whose recording fails part-way, and a run
whose closed server forges a delivery for a vector it refused.
"""

from __future__ import annotations

import asyncio
import smtplib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, connections

from relaytests import deliveries, runs
from relaytests.management.commands.canary import record_in_long_running_process
from relaytests.models import CanaryDelivery, TestRun, VerdictChange
from relaytests.probe.canary import RECIPIENT, host_tag, make_token
from relaytests.probe.message import test_message
from relaytests.probe.receiver import CanaryReceiver
from relaytests.tasks import run_suite
from tests.fakes.smtp import BEHAVIOURS, LOCAL_DOMAIN, FakeSMTPServer
from tests.portal import factories
from tests.portal.conftest import client_for
from tests.portal.worker import loopback_server, queued_run

Status = TestRun.Status
PARALLEL = 50
TIMEOUT = 60.0  # a bound for a stuck receiver, not a speed claim


@contextmanager
def portal_receiver() -> Iterator[CanaryReceiver]:
    """The receiver as `manage.py canary` runs it, on its own thread and event loop."""
    loop = asyncio.new_event_loop()
    receiver = CanaryReceiver(
        settings.RELAYTEST_CANARY_DOMAIN,
        settings.RELAYTEST_CANARY_SECRET,
        sync_to_async(record_in_long_running_process),
        host="127.0.0.1",
        port=0,
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(receiver.start(), loop).result(TIMEOUT)
    try:
        yield receiver
    finally:
        asyncio.run_coroutine_threadsafe(receiver.stop(), loop).result(TIMEOUT)
        asyncio.run_coroutine_threadsafe(sync_to_async(connections.close_all)(), loop).result(TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


def canary_address(run: TestRun, vector_id: str, address: str = "192.0.2.25", port: int = 25) -> str:
    token = make_token(
        settings.RELAYTEST_CANARY_SECRET, RECIPIENT, run.probe_run_id, host_tag(address, port), vector_id
    )
    return f"{token}@{settings.RELAYTEST_CANARY_DOMAIN}"


def deliver(
    receiver: CanaryReceiver, recipients: list[str], message: bytes, source: str = "127.0.0.1"
) -> tuple[int, bytes]:
    """One message over SMTP from `source`; the reply to its end of data."""
    with smtplib.SMTP(
        receiver.host, receiver.port, local_hostname="relay.test", timeout=TIMEOUT, source_address=(source, 0)
    ) as smtp:
        smtp.ehlo()
        smtp.mail("")
        for recipient in recipients:
            smtp.rcpt(recipient)
        return smtp.data(message)


def taken_vector(run: TestRun, vector_id: str) -> dict:
    address = canary_address(run, vector_id)
    return {**factories.awaited_vector(vector_id, address.partition("@")[0]), "delivered": False}


def run_that_took(server, vector_ids: list[str], **fields) -> TestRun:
    """A finished run whose host took a test message for each vector (none has arrived yet)."""
    run = factories.make_run(server, verdict="accepts_relay", **fields)
    vectors = [taken_vector(run, vector_id) for vector_id in vector_ids]
    run.report = factories.report(
        "accepts_relay", hosts=[factories.host(verdict="accepts_relay", vectors=vectors)]
    )
    run.save()
    return run


class ProgressWriter(threading.Thread):
    """A worker writing its run's progress in a loop, as runs.save_progress does during a probe."""

    def __init__(self, run: TestRun):
        super().__init__(daemon=True)
        self.run_id, self.report = run.pk, run.report
        self.stopping = threading.Event()
        self.writes = 0
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                assert runs.save_progress(self.run_id, self.report)
                self.writes += 1
        except BaseException as error:  # reported by the test
            self.errors.append(error)
        finally:
            connection.close()


@pytest.mark.django_db(transaction=True)
def test_fifty_messages_at_once_are_all_answered_250_and_recorded_while_a_run_writes_progress(server):
    vector_ids = [f"vector-{i}" for i in range(PARALLEL)]
    run = run_that_took(server, vector_ids)
    running = factories.make_run(
        server,
        status=Status.RUNNING,
        report=factories.report(
            "inconclusive",
            hosts=[factories.host(verdict="inconclusive", vectors=[factories.vector("plain", "rejected")])],
        ),
    )
    writer = ProgressWriter(running)
    sources = [f"127.0.1.{i + 1}" for i in range(PARALLEL)]  # fifty relays, one message each

    def relay(i: int) -> tuple[int, bytes]:
        address = canary_address(run, vector_ids[i])
        message = test_message(
            address, run.probe_run_id, vector_ids[i], "Test", "http://localhost", "it@localhost"
        )
        return deliver(receiver, [address], message, source=sources[i])

    with portal_receiver() as receiver:
        writer.start()
        try:
            with ThreadPoolExecutor(PARALLEL) as pool:
                replies = list(pool.map(relay, range(PARALLEL)))
        finally:
            writer.stopping.set()
            writer.join(TIMEOUT)

    assert [code for code, _ in replies] == [250] * PARALLEL, replies
    assert CanaryDelivery.objects.filter(run=run).count() == PARALLEL
    run.refresh_from_db()
    assert run.verdict == "open_relay"
    assert all(v["delivered"] for v in run.report["hosts"][0]["vectors"])
    assert writer.errors == [] and writer.writes > 0


@pytest.mark.django_db(transaction=True)
def test_a_retried_message_is_answered_250_and_stored_once(server):
    run = run_that_took(server, ["plain"])
    address = canary_address(run, "plain")
    message = test_message(address, run.probe_run_id, "plain", "Test", "http://localhost", "it@localhost")

    with portal_receiver() as receiver:
        first = deliver(receiver, [address], message)
        retry = deliver(receiver, [address], message)

    assert (first[0], retry[0]) == (250, 250)
    assert CanaryDelivery.objects.filter(run=run).count() == 1
    assert VerdictChange.objects.filter(run=run).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_message_whose_recording_fails_stores_nothing_and_asks_for_a_retry(server, monkeypatch):
    recorded = run_that_took(server, ["plain"])
    failing = run_that_took(server, ["plain"])
    settle = deliveries._settle

    def settle_or_fail(run):
        if run.pk == failing.pk:
            raise RuntimeError("disk full")
        settle(run)

    monkeypatch.setattr(deliveries, "_settle", settle_or_fail)
    message = b"Message-ID: <one@relay.test>\r\nSubject: two runs\r\n\r\nbody\r\n"

    with portal_receiver() as receiver:
        code, _ = deliver(
            receiver, [canary_address(recorded, "plain"), canary_address(failing, "plain")], message
        )

    assert code == 451
    assert CanaryDelivery.objects.count() == 0
    assert TestRun.objects.get(pk=recorded.pk).verdict == "accepts_relay"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("redis_broker")
def test_a_delivery_forged_by_a_closed_server_leaves_its_run_secure_and_shows_as_unexpected(
    member, department
):
    with portal_receiver() as receiver:
        forger = replace(BEHAVIOURS["closed"], forge_to=(receiver.host, receiver.port))
        with FakeSMTPServer(forger) as fake:
            server = loopback_server(department, port=fake.port, mail_domain=LOCAL_DOMAIN)
            run = queued_run(server)
            run_suite.apply((run.pk,))

    run.refresh_from_db()
    [forged] = fake.forged
    assert CanaryDelivery.objects.get(run=run).token == forged.partition("@")[0]
    assert (run.status, run.verdict, run.report["verdict"]) == (Status.DONE, "secure", "secure")
    assert not any(v["delivered"] for h in run.report["hosts"] for v in h["vectors"])
    assert [(c.old_verdict, c.new_verdict) for c in VerdictChange.objects.filter(run=run)] == [("", "secure")]
    [unexpected] = run.report["unexpected_deliveries"]
    assert (unexpected["token"], unexpected["peer_address"], unexpected["host"]) == (
        forged.partition("@")[0],
        "127.0.0.1",
        "127.0.0.1",
    )
    page = client_for(member).get(run.get_absolute_url()).content.decode()
    assert "Unexpected deliveries" in page
    assert forged.partition("@")[0] in page
