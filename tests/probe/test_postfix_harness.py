"""The private Postfix instances behave as configured, seen from the probe's address (127.0.0.1).

These start real Debian Postfix instances; without postfix installed they fail, never skip.
"""

from __future__ import annotations

import asyncio
import smtplib
import socket

import pytest

from relaytests.probe.canary import RECIPIENT, SENDER, host_tag, make_token
from relaytests.probe.message import test_message
from relaytests.probe.receiver import CanaryReceiver
from tests.postfix import PROBE_SOURCE, RECEIVER_ADDRESS, PostfixError, postfix_command, postfix_instance

pytestmark = pytest.mark.postfix

SECRET = "harness-secret"
CANARY_DOMAIN = "canary.test"
RUN_ID = "harness001"
DELIVERY_WAIT = 60.0  # an upper bound for a local queue run, not an expectation of speed


def canary_address(kind: str = RECIPIENT, vector_id: str = "plain") -> str:
    return f"{make_token(SECRET, kind, RUN_ID, host_tag('127.0.0.21', 25), vector_id)}@{CANARY_DOMAIN}"


def connect(instance, source: str = PROBE_SOURCE) -> smtplib.SMTP:
    smtp = smtplib.SMTP(
        instance.address, instance.port, local_hostname="probe.test", source_address=(source, 0), timeout=30
    )
    smtp.ehlo()
    return smtp


def send_test_message(instance, recipient: str) -> dict:
    """Relay one labelled test message through the instance; the refused recipients (none when queued)."""
    message = test_message(recipient, RUN_ID, "plain", "Harness", "http://localhost", "nobody@localhost")
    with connect(instance) as smtp:
        return smtp.sendmail(canary_address(SENDER), [recipient], message)


def test_the_closed_instance_refuses_relay_permanently():
    recipient = canary_address()
    with postfix_instance("closed") as instance, connect(instance) as smtp:
        smtp.mail("someone@elsewhere.example")
        reply = smtp.rcpt(recipient)

    assert reply == (554, f"5.7.1 <{recipient}>: Relay access denied".encode())


def test_postfix_defaults_refuse_relay_only_temporarily():
    recipient = canary_address()
    with postfix_instance("closed_default") as instance, connect(instance) as smtp:
        smtp.mail("someone@elsewhere.example")
        reply = smtp.rcpt(recipient)

    assert reply == (454, f"4.7.1 <{recipient}>: Relay access denied".encode())


def test_the_closed_instance_trusts_its_network_and_not_the_probe():
    recipient = canary_address()
    with postfix_instance("closed") as instance, connect(instance, source="127.0.0.99") as smtp:
        smtp.mail("someone@elsewhere.example")
        trusted_reply = smtp.rcpt(recipient)

    # Past the relay check (trusted), the recipient meets the error transport: nothing leaves.
    rejected = f"5.7.1 <{recipient}>: Recipient address rejected: nothing leaves a relaytest Postfix instance"
    assert trusted_reply == (550, rejected.encode())


async def test_the_open_instance_relays_the_canary_message_to_the_receiver():
    arrived = asyncio.Queue()
    recipient = canary_address()
    async with CanaryReceiver(
        CANARY_DOMAIN, SECRET, arrived.put_nowait, host=RECEIVER_ADDRESS, port=0
    ) as receiver:
        with postfix_instance(
            "open", canary_domain=CANARY_DOMAIN, canary_relay=(RECEIVER_ADDRESS, receiver.port)
        ) as instance:
            refused = await asyncio.to_thread(send_test_message, instance, recipient)
            [delivery] = await asyncio.wait_for(arrived.get(), DELIVERY_WAIT)

    assert refused == {}
    assert (delivery.run_id, delivery.vector_id, delivery.rcpt_tos) == (RUN_ID, "plain", (recipient,))
    assert delivery.peer_address == instance.address
    assert delivery.mail_from == canary_address(SENDER)
    [hop] = delivery.received_chain
    assert hop.startswith(f"from probe.test (unknown [{PROBE_SOURCE}])")
    assert "by open.postfix.test (Postfix) with ESMTP id " in hop
    assert f"for <{recipient}>" in hop


def test_the_open_instance_lets_nothing_but_the_canary_leave():
    unused_receiver = (RECEIVER_ADDRESS, 9)
    with (
        postfix_instance("open", canary_domain=CANARY_DOMAIN, canary_relay=unused_receiver) as instance,
        connect(instance) as smtp,
    ):
        smtp.mail("someone@elsewhere.example")
        reply = smtp.rcpt("victim@elsewhere.example")

    assert reply == (
        550,
        b"5.7.1 <victim@elsewhere.example>: Recipient address rejected: "
        b"nothing leaves a relaytest Postfix instance",
    )


async def test_the_discard_instance_accepts_but_never_delivers():
    arrived = []
    recipient = canary_address()
    async with CanaryReceiver(CANARY_DOMAIN, SECRET, arrived.extend, host=RECEIVER_ADDRESS, port=0):
        with postfix_instance("discard") as instance:
            refused = await asyncio.to_thread(send_test_message, instance, recipient)
            log = await asyncio.to_thread(instance.wait_for_log, "status=sent (accepted and discarded")

    assert refused == {}
    assert f"to=<{recipient}>, relay=none" in log
    assert arrived == []


def test_an_instance_leaves_no_process_behind_even_when_the_test_fails():
    with pytest.raises(RuntimeError, match="the test failed"), postfix_instance("closed") as instance:
        running = instance.processes()
        raise RuntimeError("the test failed")

    assert running != []
    assert instance.processes() == []
    assert not instance.directory.exists()
    with pytest.raises(OSError):
        socket.create_connection((instance.address, instance.port), timeout=5).close()


def test_a_missing_postfix_is_an_error_not_a_skip(tmp_path):
    with pytest.raises(PostfixError, match="postfix is not installed"):
        postfix_command(search_path=str(tmp_path))
