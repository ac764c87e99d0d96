"""The canary receiver, spoken to over real sockets: what it accepts, records, refuses and bounds."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import replace

import aiosmtplib
import pytest

from relaytests.probe.canary import RECIPIENT, SENDER, host_tag, make_token
from relaytests.probe.receiver import DEFAULT_LIMITS, CanaryReceiver, ReceiverLimits, received_chain

SECRET = "receiver-test-secret"
DOMAIN = "canary.test"
RUN_ID = "abcdefghij"
MESSAGE = (
    b"Received: from relay.example.org (relay.example.org [192.0.2.7])\r\n"
    b"\tby mx.example.org with ESMTP id 1; Fri, 27 Nov 2026 10:00:01 +0000\r\n"
    b"Received: from probe.test ([127.0.0.1]) by relay.example.org; Fri, 27 Nov 2026 10:00:00 +0000\r\n"
    b"Subject: relay test\r\n"
    b"\r\n"
    b"hello\r\n"
)


HOST_TAG = host_tag("192.0.2.25", 25)


def canary_address(vector_id: str = "plain", kind: str = RECIPIENT, secret: str = SECRET) -> str:
    return f"{make_token(secret, kind, RUN_ID, HOST_TAG, vector_id)}@{DOMAIN}"


@asynccontextmanager
async def running_receiver(on_message, limits: ReceiverLimits = DEFAULT_LIMITS):
    async with CanaryReceiver(DOMAIN, SECRET, on_message, host="127.0.0.1", port=0, limits=limits) as rx:
        yield rx


@pytest.fixture
async def deliveries():
    return []


@pytest.fixture
async def receiver(deliveries):
    async with running_receiver(deliveries.extend) as receiver:
        yield receiver


@asynccontextmanager
async def client(receiver: CanaryReceiver):
    smtp = aiosmtplib.SMTP(
        hostname=receiver.host, port=receiver.port, local_hostname="probe.test", start_tls=False, timeout=10
    )
    await smtp.connect()
    await smtp.ehlo()
    try:
        yield smtp
    finally:
        smtp.close()


async def rcpt(smtp: aiosmtplib.SMTP, address: str) -> int:
    return (await smtp.execute_command(b"RCPT", f"TO:<{address}>".encode())).code


async def send(
    receiver: CanaryReceiver,
    recipients: list[str],
    message: bytes = MESSAGE,
    sender: str = "someone@elsewhere.example",
) -> tuple[list[int], int]:
    """The RCPT codes and the final reply code of one transaction (503 when no recipient was accepted)."""
    async with client(receiver) as smtp:
        await smtp.mail(sender)
        codes = [await rcpt(smtp, address) for address in recipients]
        if 250 not in codes:
            return codes, (await smtp.execute_command(b"DATA")).code
        try:
            return codes, (await smtp.data(message)).code
        except aiosmtplib.SMTPResponseException as refused:
            return codes, refused.code


async def test_it_records_a_canary_message_with_its_received_chain(receiver, deliveries):
    address = canary_address("percent-hack")

    codes, final = await send(receiver, [address])

    assert (codes, final) == ([250], 250)
    [delivery] = deliveries
    assert (delivery.token, delivery.run_id, delivery.host_tag, delivery.vector_id) == (
        address.partition("@")[0],
        RUN_ID,
        HOST_TAG,
        "percent-hack",
    )
    assert delivery.peer_address == "127.0.0.1"
    assert delivery.mail_from == "someone@elsewhere.example"
    assert delivery.rcpt_tos == (address,)
    assert delivery.received_chain == (
        "from relay.example.org (relay.example.org [192.0.2.7]) by mx.example.org with ESMTP id 1; "
        "Fri, 27 Nov 2026 10:00:01 +0000",
        "from probe.test ([127.0.0.1]) by relay.example.org; Fri, 27 Nov 2026 10:00:00 +0000",
    )
    assert delivery.received_at.tzinfo is not None


async def test_the_canary_domain_is_case_insensitive(receiver, deliveries):
    token = canary_address().partition("@")[0]

    codes, final = await send(receiver, [f"{token}@CANARY.Test"])

    assert (codes, final) == ([250], 250)
    assert [d.token for d in deliveries] == [token]


@pytest.mark.parametrize(
    ("recipient", "code"),
    [
        pytest.param(canary_address().replace(DOMAIN, "elsewhere.example"), 550, id="other-domain"),
        pytest.param(canary_address().replace(DOMAIN, f"sub.{DOMAIN}"), 550, id="subdomain"),
        pytest.param(f"postmaster@{DOMAIN}", 550, id="postmaster"),
        pytest.param(f"r-{RUN_ID}-plain@{DOMAIN}", 550, id="token-without-mac"),
        pytest.param(f"r-short-plain-0123456789@{DOMAIN}", 550, id="malformed-run-id"),
        pytest.param(canary_address(secret="another-portal"), 550, id="mac-of-another-secret"),
        pytest.param(
            canary_address().replace(HOST_TAG, host_tag("192.0.2.26", 25)), 550, id="moved-to-another-host"
        ),
        pytest.param(f"victim%elsewhere.example@{DOMAIN}", 550, id="percent-hack-through-us"),
        pytest.param(f"elsewhere.example!victim@{DOMAIN}", 550, id="bang-path-through-us"),
        pytest.param(canary_address().replace("@", "@elsewhere.example@", 1), 553, id="two-at-signs"),
    ],
)
async def test_it_refuses_every_other_recipient_at_rcpt(receiver, deliveries, recipient, code):
    codes, final = await send(receiver, [recipient])

    assert codes == [code]
    assert final == 503  # no recipient, so no message: the receiver can never relay
    assert deliveries == []


async def test_only_the_canary_recipients_of_a_message_are_accepted(receiver, deliveries):
    good, other = canary_address("plain"), "victim@elsewhere.example"

    codes, final = await send(receiver, [good, other])

    assert (codes, final) == ([250, 550], 250)
    assert [d.rcpt_tos for d in deliveries] == [(good,)]


async def test_each_token_of_a_message_is_one_delivery(receiver, deliveries):
    codes, _ = await send(receiver, [canary_address("plain"), canary_address("bang-path")])

    assert codes == [250, 250]
    assert [d.vector_id for d in deliveries] == ["plain", "bang-path"]


async def test_sender_tokens_pass_callouts_but_a_bounce_is_no_delivery(receiver, deliveries):
    sender_token = canary_address(kind=SENDER)

    codes, final = await send(receiver, [sender_token], sender="")

    assert (codes, final) == ([250], 250)
    assert deliveries == []


async def test_an_async_callback_is_awaited():
    recorded = []

    async def record(deliveries):
        await asyncio.sleep(0)
        recorded.extend(delivery.vector_id for delivery in deliveries)

    async with running_receiver(record) as receiver:
        assert await send(receiver, [canary_address("plain")]) == ([250], 250)
    assert recorded == ["plain"]


async def test_a_failed_recording_asks_the_relay_to_retry():
    def broken(deliveries):
        raise RuntimeError("database down")

    async with running_receiver(broken) as receiver:
        codes, final = await send(receiver, [canary_address()])

    assert (codes, final) == ([250], 451)


async def test_an_oversized_message_is_refused_and_not_recorded(deliveries):
    limits = replace(DEFAULT_LIMITS, max_message_bytes=2000)
    async with running_receiver(deliveries.extend, limits) as receiver:
        codes, final = await send(receiver, [canary_address()], MESSAGE + (b"x" * 70 + b"\r\n") * 100)

    assert (codes, final) == ([250], 552)
    assert deliveries == []


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout=10)


async def test_connections_beyond_the_limit_are_turned_away(deliveries):
    limits = replace(DEFAULT_LIMITS, max_sessions=1)
    async with running_receiver(deliveries.extend, limits) as receiver:
        async with client(receiver):
            reader, writer = await asyncio.open_connection(receiver.host, receiver.port)
            turned_away = await read_until_closed(reader)
            writer.close()
        await wait_for(lambda: receiver.open_sessions == 0)
        async with client(receiver) as smtp:  # the slot is free again
            assert (await smtp.noop()).code == 250

    assert turned_away.startswith(b"421 4.7.0 Too many connections")


async def test_a_session_is_closed_at_its_time_limit(deliveries):
    limits = replace(DEFAULT_LIMITS, session_seconds=0.3)
    async with running_receiver(deliveries.extend, limits) as receiver:
        reader, writer = await asyncio.open_connection(receiver.host, receiver.port)
        writer.write(b"EHLO probe.test\r\n")
        received = await read_until_closed(reader)
        writer.close()

    assert received.startswith(b"220 ")
    assert received.endswith(b"421 4.4.2 Session time limit reached, closing\r\n")


async def test_an_idle_session_is_closed(deliveries):
    limits = replace(DEFAULT_LIMITS, idle_seconds=0.3)
    async with running_receiver(deliveries.extend, limits) as receiver:
        reader, writer = await asyncio.open_connection(receiver.host, receiver.port)
        received = await read_until_closed(reader)
        writer.close()

    assert received.startswith(b"220 canary.test ESMTP relaytest canary receiver")


async def test_stopping_closes_open_sessions(deliveries):
    receiver = CanaryReceiver(DOMAIN, SECRET, deliveries.extend, host="127.0.0.1", port=0)
    await receiver.start()
    reader, writer = await asyncio.open_connection(receiver.host, receiver.port)
    greeting = await reader.readline()

    await receiver.stop()

    assert greeting.startswith(b"220 ")
    assert await read_until_closed(reader) == b""
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection(receiver.host, receiver.port)


async def wait_for(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def test_the_received_chain_is_bounded():
    limits = replace(DEFAULT_LIMITS, max_received_headers=3, max_header_chars=20)
    headers = b"".join(b"Received: from hop%d.example " % i + b"x" * 50 + b"\r\n" for i in range(10))

    chain = received_chain(headers + b"\r\nbody\r\n", limits)

    assert chain == ("from hop0.example xx", "from hop1.example xx", "from hop2.example xx")


def test_a_received_header_that_is_not_text_is_kept_readable():
    chain = received_chain(b"Received: from \xff\xfe.example by =?utf-8?q?caf=C3=A9?=\r\n\r\n")

    assert chain == ("from \ufffd\ufffd.example by caf\u00e9",)


async def test_a_message_takes_a_few_recipients_and_is_one_delivery_per_token(receiver, deliveries):
    first, second = canary_address("plain"), canary_address("percent-host")

    codes, final = await send(receiver, [first, second] + [first] * 398)

    assert codes == [250] * 5 + [452] * 395
    assert final == 250
    assert [d.token for d in deliveries] == [first.partition("@")[0], second.partition("@")[0]]


async def test_a_retried_message_carries_the_same_key_and_another_message_does_not(receiver, deliveries):
    address = canary_address("plain")
    other = MESSAGE.replace(b"hello", b"another message")

    for message in (MESSAGE, MESSAGE, other, b"Message-ID: <id@relay.example.org>\r\n\r\nx\r\n"):
        assert await send(receiver, [address], message) == ([250], 250)

    keys = [d.message_key for d in deliveries]
    assert keys[0] == keys[1] != keys[2]
    assert keys[3] == "<id@relay.example.org>"


async def connect(receiver: CanaryReceiver, source: str = "127.0.0.1"):
    return await asyncio.open_connection(receiver.host, receiver.port, local_addr=(source, 0))


async def test_one_peer_gets_its_share_of_sessions_its_next_connections_wait_then_are_turned_away(deliveries):
    limits = replace(DEFAULT_LIMITS, max_sessions=10, max_sessions_per_peer=2, max_held_per_peer=1)
    async with running_receiver(deliveries.extend, limits) as receiver:
        first, second = await connect(receiver), await connect(receiver)
        greetings = [await reader.readline() for reader, _ in (first, second)]
        held_reader, held_writer = await connect(receiver)
        reader, writer = await connect(receiver)
        turned_away = await read_until_closed(reader)
        writer.close()
        other_reader, other_writer = await connect(receiver, "127.0.0.2")
        other_peer = await other_reader.readline()
        sessions_while_held = receiver.open_sessions
        first[1].close()  # the first peer's session ends: its slot goes to the held connection
        held_greeting = await held_reader.readline()
        for open_writer in (second[1], held_writer, other_writer):
            open_writer.close()

    assert all(greeting.startswith(b"220 ") for greeting in greetings)
    assert turned_away.startswith(b"421 4.7.0 Too many connections from your address")
    assert other_peer.startswith(b"220 ")  # another peer is served all the while
    assert sessions_while_held == 3  # a held connection takes no slot
    assert held_greeting.startswith(b"220 ")


async def test_a_held_connection_is_turned_away_when_no_slot_frees_in_time(deliveries):
    limits = replace(DEFAULT_LIMITS, max_sessions_per_peer=1, hold_seconds=0.3)
    async with running_receiver(deliveries.extend, limits) as receiver:
        _, first_writer = await connect(receiver)
        reader, writer = await connect(receiver)
        received = await read_until_closed(reader)
        writer.close()
        first_writer.close()

    assert received == b"421 4.7.0 Too many connections from your address, try again later\r\n"


def test_the_received_chain_is_bounded_in_bytes_too():
    headers = b"".join(b"Received: from hop%d.example " % i + b"\xc3\xa9" * 990 + b"\r\n" for i in range(100))

    chain = received_chain(headers + b"\r\nbody\r\n")

    assert 0 < len(chain) <= DEFAULT_LIMITS.max_received_headers
    assert sum(len(hop.encode()) for hop in chain) <= DEFAULT_LIMITS.max_chain_bytes
    assert chain[0].startswith("from hop0.example")  # the latest hops are kept
