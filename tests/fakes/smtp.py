"""Fake SMTP servers for the engine's tests: one configurable server, described by a ``Behaviour``.

The server is aiosmtpd's SMTP protocol with MAIL and RCPT taken over (aiosmtpd's parser refuses
the very address tricks the engine sends, so the fake reads the raw argument itself), a ``push``
that counts errors and can tarpit or hang up, and raw stream writes for the hostile replies
aiosmtpd is too polite to send. Each server listens on 127.0.0.1 with an OS-chosen port, runs its
own event loop on its own thread (so in-process async tests and subprocess CLI tests can both use
it), is a context manager, and records what it saw in ``server.seen``: every connection, every
command line exactly as it arrived, the errors and tarpit sleeps per connection. Servers given one
``Crowd`` also count the connections open at once across all of them.

Behaviours (``BEHAVIOURS``; ``python -m tests.fakes.serve NAME`` runs one):

  closed             Postfix-like (banner ``220 mx.dept.example.edu ESMTP Postfix (Debian/GNU)``,
                     EHLO PIPELINING SIZE VRFY ETRN ENHANCEDSTATUSCODES 8BITMIME DSN); takes mail
                     for its mailboxes (postmaster, abuse) at dept.example.edu, its own name and
                     address literal only; another local part there is ``550 5.1.1 ... User unknown``;
                     every other recipient and every address trick gets
                     ``554 5.7.1 <addr>: Relay access denied``
  postfix-default    the same, refusing relay with ``454 4.7.1`` (Postfix's defer_unauth_destination)
  open               a plain open relay: every recipient ``250 2.1.5 Ok``
  open-percent       relays only the percent hack ``user%outside@self`` (self: name, domain, literal)
  open-srcroute      relays only source routes through itself ``@self:user@outside``
  open-bang          relays only bang paths ``outside!user`` (with or without ``@self``)
  open-quoted        relays only quoted local parts holding an outside address ``"user@outside"``
  open-iplit         relays whatever is addressed to its own address literal ``...@[127.0.0.1]``
  open-literal-mailbox  takes any mailbox at its own address literal ``token@[127.0.0.1]`` (Metasploit's test 4)
  open-loopback      relays only percent hacks and source routes through ``localhost`` or ``[127.0.0.1]``
                     (give it another loopback address, ``FakeSMTPServer(..., address="127.0.0.2")``,
                     so that [127.0.0.1] is not its own literal)
  open-dsn           relays only recipients with DSN parameters (``NOTIFY=``, ``ORCPT=``)
  litfrom-percent    relays the percent hack, only for a sender at its own address literal (nmap's sender)
  nullfrom-srcroute  relays source routes through itself, only for the null sender ``<>``
  srcroute-sender    relays anything for a sender source-routed through itself ``<@self:user@outside>``
  smtputf8-sender    advertises SMTPUTF8 and relays anything for a MAIL FROM with the SMTPUTF8 parameter
  first-rcpt         decides relaying once per transaction, on the first recipient it accepted
                     (a local one: every later recipient passes)
  helo-domain        relays for clients whose HELO is a name under dept.example.edu (not its own name)
  data-refusal       advertises CHUNKING, accepts relay recipients, refuses relay at DATA with
                     ``554 5.7.1 Relay access denied`` and takes the same message by BDAT
  catch-all          a lab sink: ``250 2.1.5 Ok`` to every RCPT, whatever its argument
  greylisting        postgrey's ``450 4.2.0 ... Greylisted`` to every RCPT (``greylist="first-time"``
                     lets a retried triplet through to the closed policy)
  client-blocked     ``554 5.7.1 Service unavailable; Client host [ip] blocked using zen.spamhaus.org``
                     to every RCPT
  421-at-connect     ``421 4.3.2 Service not available, closing transmission channel``, then hangs up
  554-at-connect     ``554 5.3.2 mx.dept.example.edu No SMTP service here``, then hangs up
  drop-after-errors  closed, but hangs up without a reply once it gave N error replies on the
                     connection (Postfix's hard error limit); N = ``drop_after_errors``
  tarpit-after-errors closed, but sleeps ``tarpit_seconds`` before every reply once it gave N error
                     replies on the connection (Postfix's soft error limit)
  stalls-after-two-refusals  closed, answers two refusals at once, then sleeps ten minutes before
                     every reply: a probe caught waiting part-way through its run
  slow-banner        closed, waiting ``banner_delay`` seconds before its greeting
  endless-greeting   ``220-`` lines forever;  endless-ehlo: ``250-`` lines forever after EHLO
  overlong-greeting  ``220 xxxx...`` with no line end, forever;  overlong-ehlo: the same after EHLO
  garbage            binary bytes instead of a greeting, then silence
  starttls-required  offers STARTTLS (a trustme certificate) and answers MAIL before TLS with
                     ``530 5.7.0 Must issue a STARTTLS command first``; closed once TLS is up
                     (``relays`` makes it open)
  implicit-tls       closed, speaking TLS from the first byte (a trustme certificate), as port 465 does
                     (RFC 8314); ``relays`` makes it open
  helo-only          ``502 5.5.2 Error: command not recognized`` to EHLO; HELO works
  pipelining-intolerant  a command that arrives while an earlier one is unanswered gets
                     ``554 5.5.0 Error: SMTP protocol synchronization`` and the server hangs up
  exim               a closed, current Exim with its default ACLs: ``550 relay not permitted`` to outside
                     recipients, ``550 Administrative prohibition`` to every routing trick
                     (percent hack, quoted local part, bang path, source route, double @)
  tarpit             closed, but every reply after the greeting comes ``tarpit_seconds`` late
  reply-2500         ``2500 ok`` to MAIL and RCPT: no SMTP reply at all, though it starts with 250
  reply-999          ``999 ok`` to RCPT;  reply-abc: ``abc hello`` to RCPT
  reply-mixed        one RCPT reply whose lines disagree: ``250-2.1.5 Ok`` then ``550 5.7.1 ...``
  hostile-text       NUL, ESC sequences, BEL, invalid UTF-8 in the greeting, the EHLO reply and the
                     refusal of STARTTLS (which it offers)
  hostile-certificate  closed, with STARTTLS and a certificate whose names hold terminal escapes
  malformed-certificate  closed, with STARTTLS and a certificate cryptography cannot parse

``raw_replies`` replaces the reply to a verb (or the greeting) with bytes written as they are,
for the replies no MTA should send; ``certificate`` names one of tests/fakes/certificates.py.

Any behaviour takes another MTA's greeting with ``with_banner(behaviour, "exim")`` (BANNERS).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import aiosmtplib
import trustme
from aiosmtpd.smtp import SMTP

from tests.fakes.addresses import (
    SENDERS,
    Names,
    accepts,
    ends_at_a_mailbox_name,
    is_local,
    parse,
    parse_sender,
    uses_a_trick,
)
from tests.fakes.certificates import CERTIFICATES

# aiosmtpd logs every command at INFO; the fakes keep them in `seen` instead.
logging.getLogger("mail.log").setLevel(logging.WARNING)

HOSTNAME = "mx.dept.example.edu"
LOCAL_DOMAIN = "dept.example.edu"
LISTEN_ADDRESS = "127.0.0.1"

# What follows "220 <hostname> " in the greeting of each MTA family.
BANNERS = {
    "postfix": "ESMTP Postfix (Debian/GNU)",
    "sendmail": "ESMTP Sendmail 8.8.8/8.8.8; Fri, 27 Nov 2026 22:00:00 GMT",
    "exim": "ESMTP Exim 4.96 Fri, 27 Nov 2026 22:00:00 +0000",
    "microsoft": "Microsoft ESMTP MAIL Service ready at Fri, 27 Nov 2026 22:00:00 +0000",
    "opensmtpd": "ESMTP OpenSMTPD",
}
EHLO_KEYWORDS = ("PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN")

RELAY_DENIED = "554 5.7.1 <{address}>: Relay access denied"
USER_UNKNOWN = "550 5.1.1 <{address}>: Recipient address rejected: User unknown in local recipient table"
GREYLISTED = (
    "450 4.2.0 <{address}>: Recipient address rejected: Greylisted, "
    "see http://postgrey.schweikert.ch/help/dept.example.edu.html"
)
TLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first"
SYNC_ERROR = "554 5.5.0 Error: SMTP protocol synchronization"
TCP_ESTABLISHED = 1  # tcpi_state, the first byte of Linux's TCP_INFO
GARBAGE = bytes(range(0x80, 0x100)) * 4 + b"\x00\x07\x1b[2J\r\n"
# Text a hostile server puts in its replies: NUL, a terminal title (OSC ... BEL), a screen clear,
# invalid UTF-8 and the UTF-8 encoding of a lone surrogate.
HOSTILE_TEXT = b"evil\x00\x1b]0;owned\x07\x1b[2J\xff\xfe\xed\xa0\x80 text"
ADMINISTRATIVE_PROHIBITION = "550 Administrative prohibition"
SSH_GREETING = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3 and the rest of its identification\r\n"
IMAP_GREETING = b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE] Dovecot ready.\r\n"
FILLER_CHUNK = 64 * 1024
CANARY_RECIPIENT = re.compile(r"\br-[a-z0-9-]+@[a-z0-9.-]+", re.IGNORECASE)


@dataclass(frozen=True)
class Behaviour:
    """What one fake server does; every field has the closed Postfix-like default."""

    description: str
    banner: str = BANNERS["postfix"]
    connect_reply: str | None = None  # sent instead of the greeting, then the server hangs up
    banner_delay: float = 0.0  # seconds before the greeting
    misbehaviour: str | None = None  # "endless", "overlong" or "garbage" (see HOSTILE_WRITERS)
    misbehave_at: str = "greeting"  # or "ehlo"
    ehlo: bool = True  # False: EHLO is "not recognized", only HELO works
    starttls: bool = False  # offer STARTTLS with a trustme certificate
    implicit_tls: bool = False  # TLS from the first byte with that certificate, as on port 465
    require_starttls: bool = False
    relays: frozenset[str] = frozenset()  # address tricks it relays through (addresses.TRICKS)
    relay_denied: str = RELAY_DENIED
    rcpt_reply: str | None = None  # every RCPT gets this reply, whatever its argument
    greylist: str | None = None  # "always", or "first-time" (a retried triplet passes)
    drop_after_errors: int | None = None
    tarpit_after_errors: int | None = None
    tarpit_seconds: float = 5.0
    forbid_pipelining: bool = False
    trick_refusal: str | None = None  # the reply to routing tricks, when it differs from relay_denied
    raw_replies: tuple[tuple[str, bytes], ...] = ()  # (verb or "greeting", the reply's exact bytes)
    certificate: str = "trustme"  # or a name in certificates.CERTIFICATES
    relays_from: str | None = None  # the tricks in `relays` are open only to this kind of sender (SENDERS)
    first_rcpt_decides: bool = False  # relaying decided on the transaction's first recipient
    trusts_helo_under_domain: bool = False  # any HELO name under LOCAL_DOMAIN but its own may relay
    extra_keywords: tuple[str, ...] = ()  # EHLO keywords besides EHLO_KEYWORDS; CHUNKING makes BDAT work
    data_refusal: str | None = None  # the reply to DATA when the client may not relay (a DATA-stage policy)
    # (host, port) of a canary receiver: the first refused canary recipient is sent there straight
    # away, before the refusal, as a server that wants to be reported open could do (a forgery).
    forge_to: tuple[str, int] | None = None


def with_banner(behaviour: Behaviour, mta: str) -> Behaviour:
    return dataclasses.replace(behaviour, banner=BANNERS[mta])


CLOSED = Behaviour("closed Postfix: relay refused with 554 5.7.1")
BEHAVIOURS: dict[str, Behaviour] = {
    "closed": CLOSED,
    "postfix-default": Behaviour(
        "Postfix defaults: relay refused with 454 4.7.1",
        relay_denied="454 4.7.1 <{address}>: Relay access denied",
    ),
    "open": Behaviour("open relay: every recipient accepted", relays=frozenset({"any"})),
    **{
        f"open-{trick}": Behaviour(f"relays only the {trick} trick", relays=frozenset({trick}))
        for trick in ("percent", "srcroute", "bang", "quoted", "iplit", "literal-mailbox", "loopback", "dsn")
    },
    "litfrom-percent": Behaviour(
        "relays the percent hack for a sender at its own literal only",
        relays=frozenset({"percent"}),
        relays_from="literal",
    ),
    "nullfrom-srcroute": Behaviour(
        "relays source routes for the null sender only", relays=frozenset({"srcroute"}), relays_from="null"
    ),
    "srcroute-sender": Behaviour(
        "relays for a sender source-routed through itself", relays=frozenset({"any"}), relays_from="srcroute"
    ),
    "smtputf8-sender": Behaviour(
        "relays SMTPUTF8 transactions",
        relays=frozenset({"any"}),
        relays_from="smtputf8",
        extra_keywords=("SMTPUTF8",),
    ),
    "first-rcpt": Behaviour("decides relaying on the first recipient", first_rcpt_decides=True),
    "helo-domain": Behaviour("trusts HELO names under its domain", trusts_helo_under_domain=True),
    "data-refusal": Behaviour(
        "refuses relay at DATA only, and BDAT not at all",
        relays=frozenset({"any"}),
        extra_keywords=("CHUNKING",),
        data_refusal="554 5.7.1 Relay access denied",
    ),
    "catch-all": Behaviour(
        "lab sink: every RCPT accepted", banner="ESMTP lab sink", rcpt_reply="250 2.1.5 Ok"
    ),
    "greylisting": Behaviour("postgrey: every RCPT greylisted", greylist="always"),
    "client-blocked": Behaviour(
        "the probe's address is on a DNSBL",
        rcpt_reply="554 5.7.1 Service unavailable; Client host [{client}] blocked using zen.spamhaus.org",
    ),
    "421-at-connect": Behaviour(
        "421 at connect", connect_reply="421 4.3.2 Service not available, closing transmission channel"
    ),
    "554-at-connect": Behaviour("554 at connect", connect_reply=f"554 5.3.2 {HOSTNAME} No SMTP service here"),
    "drop-after-errors": Behaviour("hangs up after 10 errors", drop_after_errors=10),
    "tarpit-after-errors": Behaviour("tarpits after 10 errors", tarpit_after_errors=10),
    "stalls-after-two-refusals": Behaviour(
        "stalls after two refusals", tarpit_after_errors=2, tarpit_seconds=600
    ),
    "slow-banner": Behaviour("greets after 5 seconds", banner_delay=5.0),
    "endless-greeting": Behaviour("endless 220- greeting", misbehaviour="endless"),
    "endless-ehlo": Behaviour("endless 250- EHLO reply", misbehaviour="endless", misbehave_at="ehlo"),
    "overlong-greeting": Behaviour("greeting line without an end", misbehaviour="overlong"),
    "overlong-ehlo": Behaviour(
        "EHLO reply line without an end", misbehaviour="overlong", misbehave_at="ehlo"
    ),
    "garbage": Behaviour("binary garbage instead of a greeting", misbehaviour="garbage"),
    "starttls-required": Behaviour(
        "MAIL only after STARTTLS; closed over TLS", starttls=True, require_starttls=True
    ),
    "implicit-tls": Behaviour("closed, TLS from the first byte (port 465)", implicit_tls=True),
    "helo-only": Behaviour("EHLO not recognized, HELO works", ehlo=False),
    "pipelining-intolerant": Behaviour("drops clients that talk out of turn", forbid_pipelining=True),
    "exim": Behaviour(
        "closed Exim: relay not permitted, routing tricks an administrative prohibition",
        banner="ESMTP Exim 4.99.3 Fri, 27 Nov 2026 22:00:00 +0000",  # the current release
        relay_denied="550 relay not permitted",
        trick_refusal=ADMINISTRATIVE_PROHIBITION,
    ),
    "tarpit": Behaviour("closed, every reply late", tarpit_after_errors=0, tarpit_seconds=4.0),
    "reply-2500": Behaviour(
        "2500 to MAIL and RCPT", raw_replies=(("MAIL", b"2500 ok\r\n"), ("RCPT", b"2500 ok\r\n"))
    ),
    "reply-999": Behaviour("999 to RCPT", raw_replies=(("RCPT", b"999 ok\r\n"),)),
    "reply-abc": Behaviour("no code at all to RCPT", raw_replies=(("RCPT", b"abc hello\r\n"),)),
    "reply-mixed": Behaviour(
        "a RCPT reply with two codes",
        raw_replies=(("RCPT", b"250-2.1.5 Ok\r\n550 5.7.1 Relay access denied\r\n"),),
    ),
    "hostile-text": Behaviour(
        "control characters and invalid UTF-8 in its greeting, EHLO and STARTTLS refusal",
        starttls=True,
        raw_replies=(
            ("greeting", b"220 " + HOSTNAME.encode() + b" ESMTP " + HOSTILE_TEXT + b"\r\n"),
            (
                "EHLO",
                b"250-" + HOSTNAME.encode() + b" " + HOSTILE_TEXT + b"\r\n250-PIPELINING\r\n"
                b"250-STARTTLS\r\n250 8BITMIME\r\n",
            ),
            ("STARTTLS", b"454 4.7.0 TLS not available: " + HOSTILE_TEXT + b"\r\n"),
        ),
    ),
    # Services that are no SMTP server at all, on a port someone registered: their first words only.
    "ssh": Behaviour("an SSH server", raw_replies=(("greeting", SSH_GREETING),)),
    "imap": Behaviour("an IMAP server", raw_replies=(("greeting", IMAP_GREETING),)),
    "hostile-certificate": Behaviour(
        "closed, STARTTLS with hostile names in the certificate", starttls=True, certificate="hostile-names"
    ),
    "malformed-certificate": Behaviour(
        "closed, STARTTLS with a certificate cryptography refuses",
        starttls=True,
        certificate="malformed-extension",
    ),
}


@dataclass
class ConnectionLog:
    """What one client connection did and got."""

    commands: list[bytes] = field(default_factory=list)  # each command line as sent, without CRLF
    errors: int = 0  # 4xx and 5xx replies given
    tarpit_sleeps: int = 0
    sync_errors: int = 0
    dropped: bool = False  # hung up on the client for too many errors
    tls: bool = False
    messages: int = 0


@dataclass
class Crowd:
    """Connections open at once (to one fake server, or across several), and the most.

    A fake sees a client's close only when its thread's loop gets to it, which under load can come
    after that client's next connection has reached another fake (or the same one). So the count
    asks the kernel: a connection counts while its socket is still established, whatever its
    thread has seen yet; a QUIT answered ends it at once (see FakeSMTP._finish).
    """

    most: int = 0
    _open: set[FakeSMTP] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def opened(self, connection: FakeSMTP) -> None:
        with self._lock:  # a socket leaves the set (under this lock) before its thread closes it
            self._open = {other for other in self._open if other.established}
            self._open.add(connection)
            self.most = max(self.most, len(self._open))

    def closed(self, connection: FakeSMTP) -> None:
        with self._lock:
            self._open.discard(connection)


@dataclass
class Seen:
    """Everything a server saw, for assertions on the exact bytes and the client's manners."""

    connections: list[ConnectionLog] = field(default_factory=list)
    at_once: Crowd = field(default_factory=Crowd)  # this server's own connections

    @property
    def max_concurrent(self) -> int:
        return self.at_once.most

    @property
    def commands(self) -> list[bytes]:
        return [line for conn in self.connections for line in conn.commands]

    def arguments(self, prefix: bytes) -> list[bytes]:
        """What followed ``prefix`` (b"RCPT TO:", b"MAIL FROM:") on each such line, byte for byte."""
        return [line[len(prefix) :] for line in self.commands if line[: len(prefix)].upper() == prefix]

    @property
    def rcpt_arguments(self) -> list[bytes]:
        return self.arguments(b"RCPT TO:")

    @property
    def mail_arguments(self) -> list[bytes]:
        return self.arguments(b"MAIL FROM:")

    @property
    def most_errors_on_one_connection(self) -> int:
        return max((conn.errors for conn in self.connections), default=0)

    @property
    def tarpit_sleeps(self) -> int:
        return sum(conn.tarpit_sleeps for conn in self.connections)

    @property
    def sync_errors(self) -> int:
        return sum(conn.sync_errors for conn in self.connections)


class _Handler:
    """aiosmtpd's hooks for the commands the fake leaves to aiosmtpd, with Postfix's wording."""

    def __init__(self, log: ConnectionLog):
        self.log = log

    async def handle_DATA(self, server, session, envelope):
        self.log.messages += 1
        return "250 2.0.0 Ok: queued as FAKE0001"

    async def handle_RSET(self, server, session, envelope):
        return "250 2.0.0 Ok"

    async def handle_NOOP(self, server, session, envelope, arg):
        return "250 2.0.0 Ok"

    async def handle_QUIT(self, server, session, envelope):
        return "221 2.0.0 Bye"


def _is_final_line(line: str) -> bool:
    return len(line) < 4 or line[3] != "-"


class FakeSMTP(SMTP):
    """One client connection to a fake server."""

    def __init__(self, server: FakeSMTPServer, log: ConnectionLog):
        behaviour = server.behaviour
        super().__init__(
            _Handler(log),
            hostname=HOSTNAME,
            ident=behaviour.banner,
            tls_context=server.tls_context if behaviour.starttls else None,
            loop=server.loop,
        )
        self.behaviour = behaviour
        self.fake = server
        self.log = log
        self._greeted = False
        self._finished = False
        self._mid_reply = False
        self._pending = b""  # the start of a command line still arriving
        self._unanswered = 0  # command lines received and not yet answered
        self._in_message = False  # between DATA's 354 and the final "."
        self._chunk_left = 0  # bytes of a BDAT chunk still to come (no command lines)

    # -- what arrives ---------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._pending += data
        while self._pending:
            if self._chunk_left:  # a BDAT chunk: bytes, not command lines
                taken = self._pending[: self._chunk_left]
                self._chunk_left -= len(taken)
                self._pending = self._pending[len(taken) :]
                continue
            line, newline, rest = self._pending.partition(b"\n")
            if not newline:
                break
            self._pending = rest
            self._take_line(line.removesuffix(b"\r"))
        if self.behaviour.forbid_pipelining and self._unanswered > 1:
            self._refuse_out_of_turn()
            return
        super().data_received(data)

    def _take_line(self, line: bytes) -> None:
        if self._in_message:
            self._in_message = line != b"."
            self._unanswered += not self._in_message
            return
        self.log.commands.append(line)
        self._unanswered += 1
        words = line.split()
        if len(words) > 1 and words[0].upper() == b"BDAT" and words[1].isdigit():
            self._chunk_left = int(words[1])

    def _raw_reply(self, verb: str) -> bytes | None:
        return dict(self.behaviour.raw_replies).get(verb)

    def _write_raw(self, reply: bytes) -> None:
        self._unanswered = max(0, self._unanswered - 1)
        self.transport.write(reply)

    def _refuse_out_of_turn(self) -> None:
        self.log.sync_errors += 1
        self.transport.write(SYNC_ERROR.encode() + b"\r\n")
        self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._socket = transport.get_extra_info("socket")
        for crowd in self.fake.crowds:
            crowd.opened(self)

    @property
    def established(self) -> bool:
        """The kernel's view: neither side has closed the connection yet."""
        try:
            info = self._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)
        except OSError:  # closed already: over TLS asyncio tells the protocol only after the socket's close
            return False
        return info[0] == TCP_ESTABLISHED

    def connection_lost(self, error: Exception | None) -> None:
        self.fake.open_connections.discard(self)
        self._finish()
        super().connection_lost(error)

    def _finish(self) -> None:
        """The client is done with this connection: it said QUIT, or the connection is gone.

        QUIT's reply counts as the end because a client that waits for it before connecting
        again must not be seen as holding two connections while the close is still in flight.
        """
        if not self._finished:
            self._finished = True
            for crowd in self.fake.crowds:
                crowd.closed(self)

    # -- what goes out --------------------------------------------------------------------------

    async def push(self, status: str | bytes) -> None:
        line = status.decode() if isinstance(status, bytes) else status
        if not self._greeted:
            self._greeted = True
            await self._greet(line)
            return
        if self.transport is None or self.transport.is_closing():
            return
        if not self._mid_reply and not await self._enforce_error_limits():
            return
        self._account(line)
        await super().push(line)

    async def _enforce_error_limits(self) -> bool:
        """Before a reply: hang up (False) or sleep once the client has had too many errors."""
        if self._over_limit(self.behaviour.drop_after_errors):
            self.log.dropped = True
            self.transport.close()
            return False
        if self._over_limit(self.behaviour.tarpit_after_errors):
            self.log.tarpit_sleeps += 1
            await asyncio.sleep(self.behaviour.tarpit_seconds)
        return True

    def _account(self, line: str) -> None:
        """What a reply line changes: errors given, commands answered, message mode, QUIT."""
        self._mid_reply = not _is_final_line(line)
        if self._mid_reply:
            return
        self._unanswered = max(0, self._unanswered - 1)
        self.log.errors += line[:1] in ("4", "5")
        self._in_message = line.startswith("354")
        if line.startswith("221"):
            self._finish()

    def _over_limit(self, limit: int | None) -> bool:
        return limit is not None and self.log.errors >= limit

    async def _greet(self, greeting: str) -> None:
        await asyncio.sleep(self.behaviour.banner_delay)
        if self.behaviour.connect_reply:
            await super().push(self.behaviour.connect_reply)
            self.transport.close()
        elif self.behaviour.misbehaviour and self.behaviour.misbehave_at == "greeting":
            await self._misbehave("220")
        elif self._raw_reply("greeting"):
            self._write_raw(self._raw_reply("greeting"))
        else:
            self._unanswered = 0  # a client that spoke before the greeting is not pipelining
            await super().push(greeting)

    async def _misbehave(self, code: str) -> None:
        with contextlib.suppress(ConnectionError):
            await HOSTILE_WRITERS[self.behaviour.misbehaviour](self._writer, code.encode())

    # -- the commands the fake answers itself ---------------------------------------------------

    async def smtp_EHLO(self, hostname: str | None) -> None:
        if not self.behaviour.ehlo:
            await self.push("502 5.5.2 Error: command not recognized")
            return
        if not hostname:
            await self.push("501 5.5.4 Syntax: EHLO hostname")
            return
        if self.behaviour.misbehave_at == "ehlo" and self.behaviour.misbehaviour:
            await self._misbehave("250")
            return
        self._start_session(hostname, extended=True)
        if self._raw_reply("EHLO"):
            self._write_raw(self._raw_reply("EHLO"))
            return
        keywords = [*EHLO_KEYWORDS, *self.behaviour.extra_keywords]
        if self.behaviour.starttls and not self.session.ssl:
            keywords.insert(4, "STARTTLS")
        lines = [HOSTNAME, *keywords]
        for i, text in enumerate(lines):
            await self.push(f"250{' ' if i == len(lines) - 1 else '-'}{text}")

    async def smtp_HELO(self, hostname: str | None) -> None:
        if not hostname:
            await self.push("501 5.5.4 Syntax: HELO hostname")
            return
        self._start_session(hostname, extended=False)
        await self.push(f"250 {HOSTNAME}")

    def _start_session(self, hostname: str, *, extended: bool) -> None:
        self._set_rset_state()
        self.session.host_name = hostname
        self.session.extended_smtp = extended
        self.log.tls = self.log.tls or self.session.ssl is not None

    async def smtp_MAIL(self, arg: str | None) -> None:
        refusal = self._before_transaction()
        if refusal:
            await self.push(refusal)
        elif self.envelope.mail_from:
            await self.push("503 5.5.1 Error: nested MAIL command")
        elif not arg or not arg.upper().startswith("FROM:") or not arg[5:].strip():
            await self.push("501 5.5.4 Syntax: MAIL FROM:<address>")
        else:
            self.envelope.mail_from = arg[5:].strip()
            await self._reply("MAIL", "250 2.1.0 Ok")

    async def smtp_RCPT(self, arg: str | None) -> None:
        refusal = self._before_transaction()
        if refusal:
            await self.push(refusal)
        elif not self.envelope.mail_from:
            await self.push("503 5.5.1 Error: need MAIL command")
        else:
            reply = self._rcpt_reply(arg or "")
            if reply.startswith("2"):
                self.envelope.rcpt_tos.append(arg)
            elif self.behaviour.forge_to:
                await self.fake.forge(arg or "")
            await self._reply("RCPT", reply)

    async def smtp_DATA(self, arg: str) -> None:
        refusal = self._data_refusal()
        if refusal:
            await self.push(refusal)
            return
        await super().smtp_DATA(arg)

    async def smtp_BDAT(self, arg: str | None) -> None:
        """RFC 3030 with one chunk: the bytes follow the command line; the reply is the end-of-data reply."""
        words = (arg or "").split()
        if "CHUNKING" not in self.behaviour.extra_keywords:
            await self.push("500 5.5.2 Error: command not recognized")
            return
        if not words or not words[0].isdigit():
            await self.push("501 5.5.4 Syntax: BDAT count [LAST]")
            return
        await self._reader.readexactly(int(words[0]))
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        self.log.messages += 1
        self._set_post_data_state()
        await self.push("250 2.0.0 Ok: queued as FAKE0002")

    def _data_refusal(self) -> str | None:
        """A DATA-stage relay policy: refused when a recipient of the transaction is not local."""
        if not self.behaviour.data_refusal or not self.envelope.rcpt_tos:
            return None
        recipients = [parse(arg[3:]) for arg in self.envelope.rcpt_tos]
        if all(r is not None and is_local(r, self.fake.names) for r in recipients):
            return None
        return self.behaviour.data_refusal

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self._raw_reply("STARTTLS"):
            self._write_raw(self._raw_reply("STARTTLS"))
            return
        await super().smtp_STARTTLS(arg)

    async def _reply(self, verb: str, reply: str) -> None:
        raw = self._raw_reply(verb)
        if raw:
            self._write_raw(raw)
        else:
            await self.push(reply)

    def _before_transaction(self) -> str | None:
        if not self.session.host_name:
            return "503 5.5.1 Error: send HELO/EHLO first"
        if self.behaviour.require_starttls and not self.session.ssl:
            return TLS_FIRST
        return None

    def _rcpt_reply(self, arg: str) -> str:
        client = self.session.peer[0]
        if self.behaviour.rcpt_reply:
            return self.behaviour.rcpt_reply.format(client=client)
        address = parse(arg[3:]) if arg.upper().startswith("TO:") else None
        if address is None:
            return "501 5.5.4 Syntax: RCPT TO:<address>"
        if self.fake.greylisted(client, self.envelope.mail_from, address.text):
            return GREYLISTED.format(address=address.text)
        if accepts(address, self.fake.names, self._open_tricks()):
            return "250 2.1.5 Ok"
        if ends_at_a_mailbox_name(address, self.fake.names):
            return USER_UNKNOWN.format(address=address.text)
        if self.behaviour.trick_refusal and uses_a_trick(address, self.fake.names):
            return self.behaviour.trick_refusal
        return self.behaviour.relay_denied.format(address=address.text)

    def _open_tricks(self) -> frozenset[str]:
        """The tricks open to this transaction: its sender, its HELO and its first recipient may matter."""
        behaviour, names = self.behaviour, self.fake.names
        if behaviour.trusts_helo_under_domain and self._helo_under_the_domain():
            return frozenset({"any"})
        if behaviour.first_rcpt_decides and self.envelope.rcpt_tos:
            first = parse(self.envelope.rcpt_tos[0][3:])
            if first is not None and is_local(first, names):
                return frozenset({"any"})
        if behaviour.relays_from:
            sender = parse_sender(self.envelope.mail_from or "")
            if sender is None or not SENDERS[behaviour.relays_from](sender, names):
                return frozenset()
        return behaviour.relays

    def _helo_under_the_domain(self) -> bool:
        name = (self.session.host_name or "").lower()
        return name.endswith(f".{LOCAL_DOMAIN}") and name != HOSTNAME


async def _write_endless(writer: asyncio.StreamWriter, code: bytes) -> None:
    line = code + b"-" + HOSTNAME.encode() + b" has more to say\r\n"
    while True:
        writer.write(line * (FILLER_CHUNK // len(line)))
        await writer.drain()


async def _write_overlong(writer: asyncio.StreamWriter, code: bytes) -> None:
    writer.write(code + b" ")
    while True:
        writer.write(b"x" * FILLER_CHUNK)
        await writer.drain()


async def _write_garbage(writer: asyncio.StreamWriter, code: bytes) -> None:
    writer.write(GARBAGE)
    await writer.drain()
    await asyncio.Event().wait()  # then say nothing more until the client gives up


HOSTILE_WRITERS = {"endless": _write_endless, "overlong": _write_overlong, "garbage": _write_garbage}


class FakeSMTPServer:
    """A fake server on its own thread and event loop; use it as a context manager."""

    def __init__(
        self,
        behaviour: Behaviour | str = CLOSED,
        *,
        port: int = 0,
        crowd: Crowd | None = None,
        address: str = LISTEN_ADDRESS,
    ):
        self.behaviour = BEHAVIOURS[behaviour] if isinstance(behaviour, str) else behaviour
        self.address = address  # a loopback address (127.0.0.2 ... works on Linux without set-up)
        self.requested_port = port
        self.port = 0
        self.seen = Seen()
        # What counts its connections: its own Crowd, and `crowd`, shared with other servers, if given.
        self.crowds = [self.seen.at_once, *([crowd] if crowd else [])]
        self.names = Names(frozenset({HOSTNAME, LOCAL_DOMAIN, f"[{address}]"}))
        self.loop = asyncio.new_event_loop()
        self._greylist: set[tuple[str, str, str]] = set()
        self.open_connections: set[FakeSMTP] = set()
        self._thread = threading.Thread(
            target=self._run, name=f"fake-smtp: {self.behaviour.description}", daemon=True
        )
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self.forged: list[str] = []  # the canary addresses it sent a forged message to

    @cached_property
    def certificate_authority(self) -> trustme.CA:
        return trustme.CA()

    @cached_property
    def tls_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if self.behaviour.certificate == "trustme":
            self.certificate_authority.issue_cert(HOSTNAME, LISTEN_ADDRESS).configure_cert(context)
            return context
        certificate, key = CERTIFICATES[self.behaviour.certificate]()
        with tempfile.TemporaryDirectory() as directory:  # OpenSSL loads certificates from files only
            paths = Path(directory, "cert.pem"), Path(directory, "key.pem")
            for path, pem in zip(paths, (certificate, key), strict=True):
                path.write_bytes(pem)
            context.load_cert_chain(*paths)
        return context

    def greylisted(self, client: str, sender: str, recipient: str) -> bool:
        """Postgrey's rule: a triplet is deferred the first time (or always), then let through."""
        triplet = (client, sender, recipient)
        first_time = triplet not in self._greylist
        self._greylist.add(triplet)
        return self.behaviour.greylist == "always" or (self.behaviour.greylist == "first-time" and first_time)

    async def forge(self, argument: str) -> None:
        """Send the first canary recipient it refused straight to the canary (Behaviour.forge_to)."""
        token = CANARY_RECIPIENT.search(argument)
        if token is None or self.forged:
            return
        self.forged.append(token[0])
        host, port = self.behaviour.forge_to
        message = f"Message-ID: <forged-{token[0]}>\r\nSubject: not relayed\r\n\r\nforged\r\n"
        await aiosmtplib.send(
            message,
            sender="forger@dept.example.edu",
            recipients=[token[0]],
            hostname=host,
            port=port,
            timeout=10,
        )

    def __enter__(self) -> FakeSMTPServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        if self.behaviour.starttls or self.behaviour.implicit_tls:
            self.tls_context  # noqa: B018 - make the certificate before the loop needs it
        self._thread.start()
        self._ready.wait()
        if self._start_error:
            raise self._start_error

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            listener = self.loop.run_until_complete(
                self.loop.create_server(
                    self._new_connection,
                    self.address,
                    self.requested_port,
                    ssl=self.tls_context if self.behaviour.implicit_tls else None,
                )
            )
        except OSError as error:
            self._start_error = error
            self._ready.set()
            return
        self.port = listener.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._shut_down(listener))
        self.loop.close()

    def _new_connection(self) -> FakeSMTP:
        log = ConnectionLog()
        self.seen.connections.append(log)
        connection = FakeSMTP(self, log)
        self.open_connections.add(connection)
        return connection

    async def _shut_down(self, listener: asyncio.Server) -> None:
        listener.close()
        for connection in list(self.open_connections):
            connection.transport.abort()  # close() would wait for a client that stopped reading
        tasks = [t for t in asyncio.all_tasks(self.loop) if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await listener.wait_closed()
        await asyncio.sleep(0)  # let the closed transports report connection_lost
