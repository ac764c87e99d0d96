"""The fake SMTP servers do what tests/fakes/smtp.py says: other tests rely on them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import time

import pytest

from tests.fakes import BEHAVIOURS, Crowd, FakeSMTPServer, with_banner

HOST = "mx.dept.example.edu"
OUTSIDE = "r-abc@canary.example.net"
WAIT = 10.0  # seconds; only a safety net, no assertion is about time


class RawClient:
    """A client that writes exactly the bytes it is given and reads whole replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, server: FakeSMTPServer) -> RawClient:
        return cls(*await asyncio.open_connection("127.0.0.1", server.port))

    async def reply(self) -> list[str]:
        lines = []
        while not lines or lines[-1][3:4] == "-":
            line = await asyncio.wait_for(self.reader.readline(), WAIT)
            if not line:
                raise ConnectionResetError(f"closed after {lines}")
            lines.append(line.decode().rstrip("\r\n"))
        return lines

    async def send(self, *lines: str) -> None:
        self.writer.write(b"".join(line.encode() + b"\r\n" for line in lines))
        await self.writer.drain()

    async def command(self, line: str) -> list[str]:
        await self.send(line)
        return await self.reply()

    async def last_line(self, line: str) -> str:
        return (await self.command(line))[-1]

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), WAIT) == b""

    async def start_transaction(self) -> None:
        await self.reply()
        await self.command("EHLO probe.example.net")
        assert await self.last_line("MAIL FROM:<b-abc@canary.example.net>") == "250 2.1.0 Ok"

    async def rcpt(self, address: str) -> str:
        return await self.last_line(f"RCPT TO:<{address}>")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


@pytest.fixture
async def talk():
    """Connect raw clients to servers; every client is closed afterwards."""
    clients = []

    async def connect(server):
        clients.append(await RawClient.connect(server))
        return clients[-1]

    yield connect
    for client in clients:
        await client.close()


TRICKS_AT_HOME = {
    "percent": f"r-abc%canary.example.net@{HOST}",
    "srcroute": f"@{HOST}:{OUTSIDE}",
    "bang": "canary.example.net!r-abc",
    "quoted": f'"{OUTSIDE}"',
    "iplit": f"{OUTSIDE}@[127.0.0.1]",
    "double-at": f"{OUTSIDE}@{HOST}",
}


async def test_closed_server_greets_like_postfix_and_takes_only_its_own_mail(talk):
    with FakeSMTPServer("closed") as server:
        client = await talk(server)
        assert await client.reply() == ["220 mx.dept.example.edu ESMTP Postfix (Debian/GNU)"]
        assert await client.command("EHLO probe.example.net") == [
            "250-mx.dept.example.edu",
            "250-PIPELINING",
            "250-SIZE 10240000",
            "250-VRFY",
            "250-ETRN",
            "250-ENHANCEDSTATUSCODES",
            "250-8BITMIME",
            "250 DSN",
        ]
        assert await client.last_line("MAIL FROM:<b-abc@canary.example.net>") == "250 2.1.0 Ok"
        assert await client.rcpt("postmaster@dept.example.edu") == "250 2.1.5 Ok"
        assert await client.rcpt(OUTSIDE) == f"554 5.7.1 <{OUTSIDE}>: Relay access denied"
        for address in TRICKS_AT_HOME.values():
            assert await client.rcpt(address) == f"554 5.7.1 <{address}>: Relay access denied"
    assert server.seen.rcpt_arguments[:3] == [
        b"<postmaster@dept.example.edu>",
        f"<{OUTSIDE}>".encode(),
        f"<{TRICKS_AT_HOME['percent']}>".encode(),
    ]
    assert server.seen.connections[0].errors == 1 + len(TRICKS_AT_HOME)


async def test_postfix_default_refuses_relay_with_454(talk):
    with FakeSMTPServer("postfix-default") as server:
        client = await talk(server)
        await client.start_transaction()
        assert await client.rcpt(OUTSIDE) == f"454 4.7.1 <{OUTSIDE}>: Relay access denied"


async def test_open_relay_accepts_outside_recipients(talk):
    with FakeSMTPServer("open") as server:
        client = await talk(server)
        await client.start_transaction()
        assert await client.rcpt(OUTSIDE) == "250 2.1.5 Ok"


@pytest.mark.parametrize("trick", ["percent", "srcroute", "bang", "quoted", "iplit"])
async def test_one_trick_server_relays_that_trick_only(talk, trick):
    with FakeSMTPServer(f"open-{trick}") as server:
        client = await talk(server)
        await client.start_transaction()
        assert await client.rcpt(TRICKS_AT_HOME[trick]) == "250 2.1.5 Ok"
        assert await client.rcpt(OUTSIDE) == f"554 5.7.1 <{OUTSIDE}>: Relay access denied"
        others = [address for name, address in TRICKS_AT_HOME.items() if name != trick]
        for address in others:
            assert (await client.rcpt(address)).startswith("554 5.7.1"), address


async def test_catch_all_accepts_any_argument(talk):
    with FakeSMTPServer("catch-all") as server:
        client = await talk(server)
        await client.start_transaction()
        assert await client.rcpt(OUTSIDE) == "250 2.1.5 Ok"
        assert await client.last_line("RCPT TO:not an address at all") == "250 2.1.5 Ok"


async def test_greylisting_defers_every_recipient(talk):
    with FakeSMTPServer("greylisting") as server:
        client = await talk(server)
        await client.start_transaction()
        for _ in range(2):
            assert await client.rcpt("postmaster@dept.example.edu") == (
                "450 4.2.0 <postmaster@dept.example.edu>: Recipient address rejected: Greylisted, "
                "see http://postgrey.schweikert.ch/help/dept.example.edu.html"
            )


async def test_greylisting_first_time_lets_the_retried_triplet_through(talk):
    behaviour = dataclasses.replace(BEHAVIOURS["greylisting"], greylist="first-time")
    with FakeSMTPServer(behaviour) as server:
        client = await talk(server)
        await client.start_transaction()
        assert (await client.rcpt("postmaster@dept.example.edu")).startswith("450 4.2.0")
        assert await client.rcpt("postmaster@dept.example.edu") == "250 2.1.5 Ok"
        assert (await client.rcpt(OUTSIDE)).startswith("450 4.2.0")
        assert await client.rcpt(OUTSIDE) == f"554 5.7.1 <{OUTSIDE}>: Relay access denied"


async def test_client_blocked_names_the_client_address(talk):
    with FakeSMTPServer("client-blocked") as server:
        client = await talk(server)
        await client.start_transaction()
        assert await client.rcpt("postmaster@dept.example.edu") == (
            "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org"
        )


@pytest.mark.parametrize(
    ("behaviour", "greeting"),
    [
        ("421-at-connect", "421 4.3.2 Service not available, closing transmission channel"),
        ("554-at-connect", "554 5.3.2 mx.dept.example.edu No SMTP service here"),
    ],
)
async def test_refusal_at_connect_then_hang_up(talk, behaviour, greeting):
    with FakeSMTPServer(behaviour) as server:
        client = await talk(server)
        assert await client.reply() == [greeting]
        assert await client.closed_by_server()


async def test_drop_after_errors_hangs_up_without_a_reply(talk):
    behaviour = dataclasses.replace(BEHAVIOURS["drop-after-errors"], drop_after_errors=2)
    with FakeSMTPServer(behaviour) as server:
        client = await talk(server)
        await client.start_transaction()
        for _ in range(2):
            assert (await client.rcpt(OUTSIDE)).startswith("554")
        await client.send("RSET")
        assert await client.closed_by_server()
    assert server.seen.connections[0].dropped
    assert server.seen.most_errors_on_one_connection == 2


async def test_tarpit_sleeps_before_every_reply_after_the_limit(talk):
    behaviour = dataclasses.replace(
        BEHAVIOURS["tarpit-after-errors"], tarpit_after_errors=1, tarpit_seconds=0
    )
    with FakeSMTPServer(behaviour) as server:
        client = await talk(server)
        await client.start_transaction()
        assert server.seen.tarpit_sleeps == 0
        assert (await client.rcpt(OUTSIDE)).startswith("554")
        assert await client.last_line("RSET") == "250 2.0.0 Ok"
        assert await client.last_line("NOOP") == "250 2.0.0 Ok"
    assert server.seen.tarpit_sleeps == 2


async def test_slow_banner_keeps_quiet_before_the_greeting(talk):
    behaviour = dataclasses.replace(BEHAVIOURS["slow-banner"], banner_delay=3600)
    with FakeSMTPServer(behaviour) as server:
        client = await talk(server)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.reader.readline(), 0.2)


async def test_slow_banner_greets_after_its_delay(talk):
    behaviour = dataclasses.replace(BEHAVIOURS["slow-banner"], banner_delay=0.01)
    with FakeSMTPServer(behaviour) as server:
        client = await talk(server)
        assert await client.reply() == ["220 mx.dept.example.edu ESMTP Postfix (Debian/GNU)"]


@pytest.mark.parametrize(("behaviour", "code"), [("endless-greeting", "220-"), ("endless-ehlo", "250-")])
async def test_endless_reply_never_ends(talk, behaviour, code):
    with FakeSMTPServer(behaviour) as server:
        client = await talk(server)
        if code == "250-":
            await client.reply()
            await client.send("EHLO probe.example.net")
        lines = [await client.reader.readline() for _ in range(5000)]
        assert {line[:4] for line in lines} == {code.encode()}


@pytest.mark.parametrize(("behaviour", "code"), [("overlong-greeting", b"220 "), ("overlong-ehlo", b"250 ")])
async def test_overlong_line_has_no_end(talk, behaviour, code):
    with FakeSMTPServer(behaviour) as server:
        client = await talk(server)
        if code == b"250 ":
            await client.reply()
            await client.send("EHLO probe.example.net")
        received = await client.reader.readexactly(1_000_000)
        assert received.startswith(code)
        assert b"\n" not in received


async def test_garbage_instead_of_a_greeting(talk):
    with FakeSMTPServer("garbage") as server:
        client = await talk(server)
        line = await asyncio.wait_for(client.reader.readline(), WAIT)
        assert line.endswith(b"\r\n")
        assert not line[:3].isdigit()
        with pytest.raises(UnicodeDecodeError):
            line.decode("utf-8")


async def test_starttls_required_before_mail_then_closed_over_tls(talk):
    with FakeSMTPServer("starttls-required") as server:
        client = await talk(server)
        await client.reply()
        assert "250-STARTTLS" in await client.command("EHLO probe.example.net")
        assert await client.last_line("MAIL FROM:<b-abc@canary.example.net>") == (
            "530 5.7.0 Must issue a STARTTLS command first"
        )
        assert await client.last_line("STARTTLS") == "220 Ready to start TLS"
        trust = ssl.create_default_context()
        server.certificate_authority.configure_trust(trust)
        await client.writer.start_tls(trust, server_hostname=HOST)
        assert "250-STARTTLS" not in await client.command("EHLO probe.example.net")
        assert await client.last_line("MAIL FROM:<b-abc@canary.example.net>") == "250 2.1.0 Ok"
        assert await client.rcpt(OUTSIDE) == f"554 5.7.1 <{OUTSIDE}>: Relay access denied"
    assert server.seen.connections[0].tls


async def test_helo_only_refuses_ehlo(talk):
    with FakeSMTPServer("helo-only") as server:
        client = await talk(server)
        await client.reply()
        assert await client.command("EHLO probe.example.net") == ["502 5.5.2 Error: command not recognized"]
        assert await client.command("HELO probe.example.net") == ["250 mx.dept.example.edu"]
        assert await client.last_line("MAIL FROM:<b-abc@canary.example.net>") == "250 2.1.0 Ok"


async def test_pipelining_intolerant_drops_a_client_that_talks_out_of_turn(talk):
    with FakeSMTPServer("pipelining-intolerant") as server:
        client = await talk(server)
        await client.reply()
        await client.command("EHLO probe.example.net")
        await client.send("MAIL FROM:<b-abc@canary.example.net>", f"RCPT TO:<{OUTSIDE}>")
        assert await client.reply() == ["554 5.5.0 Error: SMTP protocol synchronization"]
        assert await client.closed_by_server()
    assert server.seen.sync_errors == 1


async def test_pipelining_intolerant_serves_a_client_that_waits(talk):
    with FakeSMTPServer("pipelining-intolerant") as server:
        client = await talk(server)
        await client.start_transaction()
        assert await client.rcpt(OUTSIDE) == f"554 5.7.1 <{OUTSIDE}>: Relay access denied"
        assert await client.last_line("RSET") == "250 2.0.0 Ok"
    assert server.seen.sync_errors == 0


async def test_a_message_body_is_neither_commands_nor_pipelining(talk):
    behaviour = dataclasses.replace(BEHAVIOURS["pipelining-intolerant"], relays=frozenset({"any"}))
    with FakeSMTPServer(behaviour) as server:
        client = await talk(server)
        await client.start_transaction()
        assert await client.rcpt(OUTSIDE) == "250 2.1.5 Ok"
        assert (await client.last_line("DATA")).startswith("354")
        await client.send("Subject: relay test", "", "first line", "second line", ".")
        assert await client.reply() == ["250 2.0.0 Ok: queued as FAKE0001"]
        assert await client.last_line("QUIT") == "221 2.0.0 Bye"
    log = server.seen.connections[0]
    assert (log.messages, log.sync_errors) == (1, 0)
    assert log.commands[-3:] == [f"RCPT TO:<{OUTSIDE}>".encode(), b"DATA", b"QUIT"]


async def test_other_mta_banner(talk):
    with FakeSMTPServer(with_banner(BEHAVIOURS["closed"], "exim")) as server:
        client = await talk(server)
        assert await client.reply() == [f"220 {HOST} ESMTP Exim 4.96 Fri, 27 Nov 2026 22:00:00 +0000"]


async def test_counts_connections_and_the_most_at_once(talk):
    with FakeSMTPServer("closed") as server:
        first, second = await talk(server), await talk(server)
        await first.reply()
        await second.reply()
        await first.command("QUIT")
        assert await first.closed_by_server()  # the server forgets a connection before it closes it
        third = await talk(server)
        await third.reply()
    assert len(server.seen.connections) == 3
    assert server.seen.max_concurrent == 2


async def test_a_crowd_counts_a_close_the_servers_thread_has_not_seen_yet(talk):
    """Under load a fake's thread learns of a close late: the count must not wait for it."""
    crowd = Crowd()
    with FakeSMTPServer("closed", crowd=crowd) as first, FakeSMTPServer("closed", crowd=crowd) as second:
        client = await talk(first)
        await client.reply()
        first.loop.call_soon_threadsafe(time.sleep, 1)  # its thread held up, as a loaded machine does
        await client.close()  # gone without QUIT, as the engine leaves a tarpit
        await (await talk(second)).reply()
        assert first.seen.max_concurrent == 1
        assert crowd.most == 1  # one client, one connection at a time, whatever the first thread saw


async def test_stops_cleanly_with_a_client_stuck_in_an_endless_reply(talk):
    with FakeSMTPServer("endless-greeting") as server:
        client = await talk(server)
        await client.reader.readline()
    with pytest.raises(ConnectionRefusedError):
        await RawClient.connect(server)


async def test_closed_server_knows_its_mailboxes_and_no_other_local_part(talk):
    with FakeSMTPServer("closed") as server:
        client = await talk(server)
        await client.start_transaction()
        assert await client.rcpt("abuse@[127.0.0.1]") == "250 2.1.5 Ok"
        assert await client.rcpt("r-abc@[127.0.0.1]") == (
            "550 5.1.1 <r-abc@[127.0.0.1]>: Recipient address rejected: User unknown in local recipient table"
        )
        assert await client.last_line(f"RCPT TO:<{OUTSIDE}> NOTIFY=NEVER") == (
            f"554 5.7.1 <{OUTSIDE}>: Relay access denied"  # parameters are no part of the address
        )


@pytest.mark.parametrize(
    ("behaviour", "sender", "opened", "closed"),
    [
        ("litfrom-percent", "<relaytest@[127.0.0.1]>", f"r-abc%canary.example.net@{HOST}", OUTSIDE),
        ("litfrom-percent", "<b-abc@canary.example.net>", None, f"r-abc%canary.example.net@{HOST}"),
        ("nullfrom-srcroute", "<>", f"@{HOST}:{OUTSIDE}", f"r-abc%canary.example.net@{HOST}"),
        ("srcroute-sender", f"<@{HOST}:b-abc@canary.example.net>", OUTSIDE, None),
        ("smtputf8-sender", "<b-abc@canary.example.net> SMTPUTF8", OUTSIDE, None),
        ("smtputf8-sender", "<b-abc@canary.example.net>", None, OUTSIDE),
    ],
)
async def test_a_fake_can_open_its_tricks_to_one_kind_of_sender(talk, behaviour, sender, opened, closed):
    with FakeSMTPServer(behaviour) as server:
        client = await talk(server)
        await client.reply()
        await client.command("EHLO probe.example.net")
        assert await client.last_line(f"MAIL FROM:{sender}") == "250 2.1.0 Ok"
        if opened:
            assert await client.rcpt(opened) == "250 2.1.5 Ok"
        if closed:
            assert (await client.rcpt(closed)).startswith("554 5.7.1")


async def test_first_rcpt_server_lets_the_rest_through_after_a_local_recipient(talk):
    with FakeSMTPServer("first-rcpt") as server:
        client = await talk(server)
        await client.start_transaction()
        assert (await client.rcpt(OUTSIDE)).startswith("554 5.7.1")
        assert await client.rcpt("postmaster@dept.example.edu") == "250 2.1.5 Ok"
        assert await client.rcpt(OUTSIDE) == "250 2.1.5 Ok"
        await client.command("RSET")  # a new transaction decides afresh
        assert await client.last_line("MAIL FROM:<b-abc@canary.example.net>") == "250 2.1.0 Ok"
        assert (await client.rcpt(OUTSIDE)).startswith("554 5.7.1")


async def test_data_refusal_server_refuses_data_and_takes_one_bdat_chunk(talk):
    with FakeSMTPServer("data-refusal") as server:
        client = await talk(server)
        await client.reply()
        assert "250 CHUNKING" in await client.command("EHLO probe.example.net")
        assert await client.last_line("MAIL FROM:<b-abc@canary.example.net>") == "250 2.1.0 Ok"
        assert await client.rcpt(OUTSIDE) == "250 2.1.5 Ok"
        assert await client.last_line("DATA") == "554 5.7.1 Relay access denied"
        chunk = b"Subject: x\r\n\r\nRCPT TO:<not a command>\r\n"
        client.writer.write(f"BDAT {len(chunk)} LAST\r\n".encode() + chunk)
        assert (await client.reply())[-1] == "250 2.0.0 Ok: queued as FAKE0002"
        assert await client.last_line("NOOP") == "250 2.0.0 Ok"
    assert server.seen.connections[0].messages == 1
    assert b"RCPT TO:<not a command>" not in server.seen.commands  # chunk bytes are no commands
