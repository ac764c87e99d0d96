"""`manage.py canary`: a real receiver in the command, a real SMTP client, the row in the database."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import threading
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from relaytests.models import CanaryDelivery
from relaytests.probe.canary import RECIPIENT, make_token
from relaytests.probe.message import test_message
from tests.portal import factories
from tests.portal.factories import HOST_TAG
from tests.postfix import free_port

CANARY_DOMAIN = "canary.example.net"
SECRET = "command-test-secret"
WAIT = 30.0  # upper bound for a local delivery, not an expectation of speed


@pytest.fixture
def canary_settings(settings):
    settings.RELAYTEST_CANARY_DOMAIN = CANARY_DOMAIN
    settings.RELAYTEST_CANARY_SECRET = SECRET
    settings.RELAYTEST_CANARY_LISTEN = f"127.0.0.1:{free_port('127.0.0.1')}"
    return settings


def wait_until(condition, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def greets(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            return sock.recv(4).startswith(b"220")
    except OSError:
        return False


class RelayingServer(threading.Thread):
    """Plays the relay: once the command listens, delivers one canary message, then stops the command."""

    def __init__(self, port: int, run_id: str):
        super().__init__(daemon=True)
        self.port, self.run_id = port, run_id
        self.refused: dict | None = None

    def run(self) -> None:
        if not wait_until(lambda: greets(self.port)):
            return  # the command never listened: it failed by itself, and the test says so
        try:
            address = f"{make_token(SECRET, RECIPIENT, self.run_id, HOST_TAG, 'plain')}@{CANARY_DOMAIN}"
            message = test_message(address, self.run_id, "plain", "Test", "http://localhost", "it@localhost")
            with smtplib.SMTP("127.0.0.1", self.port, local_hostname="relay.test", timeout=WAIT) as smtp:
                self.refused = smtp.sendmail("", [address], message)
        finally:
            # The command's handler is installed before it listens: this stops it, never pytest.
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.django_db(transaction=True)
def test_it_records_a_delivery_and_upgrades_the_run_until_it_is_stopped(canary_settings, server):
    run = factories.make_run(server, verdict="accepts_relay")
    plain = {
        **factories.vector("plain", "accepted", delivered=False),
        "data_code": 250,
        "token": make_token(SECRET, RECIPIENT, run.probe_run_id, HOST_TAG, "plain"),
    }
    host = factories.host(verdict="accepts_relay", vectors=[plain])
    run.report = factories.report("accepts_relay", hosts=[host])
    run.save()
    port = int(canary_settings.RELAYTEST_CANARY_LISTEN.rpartition(":")[2])
    relay = RelayingServer(port, run.probe_run_id)
    out = StringIO()

    relay.start()
    call_command("canary", stdout=out)
    relay.join(WAIT)

    assert relay.refused == {}
    row = CanaryDelivery.objects.get()
    assert (row.run_id, row.vector_id, row.late, row.peer_address) == (run.pk, "plain", True, "127.0.0.1")
    run.refresh_from_db()
    assert (run.verdict, run.report["hosts"][0]["vectors"][0]["delivered"]) == ("open_relay", True)
    assert out.getvalue().splitlines() == [
        f"canary receiver for {CANARY_DOMAIN} listening on 127.0.0.1:{port}",
        "canary receiver stopped",
    ]
    assert not greets(port)


def test_a_listen_address_that_is_not_host_and_port_is_a_clear_error(canary_settings):
    with pytest.raises(CommandError, match="--listen 'nonsense': give HOST:PORT"):
        call_command("canary", listen="nonsense")


def test_a_port_in_use_is_a_clear_error(canary_settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            call_command("canary", listen=f"127.0.0.1:{port}")
