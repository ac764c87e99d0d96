"""One SMTP conversation on aiosmtplib: exact commands, full replies, a transcript, and limits.

Addresses go on the wire through ``execute_command`` with the exact bytes of the vector:
aiosmtplib's ``mail()`` and ``rcpt()`` pass addresses through ``parseaddr`` and would silently
turn the quoted and source-route vectors into plain ones. TLS starts only when asked for: STARTTLS,
or from the first byte on a submission port with implicit TLS (RFC 8314, port 465). Certificates are
recorded, not verified (a relay test must not stop at a self-signed certificate).

Everything the server sends is hostile input: aiosmtplib bounds a line to 8 KiB and a reply to
32 KiB, every command has a timeout, and what we keep passes ``sanitise.safe_text``. A reply must
also keep RFC 5321's grammar (section 4.2): aiosmtplib reads "2500 ok" as 250 and a reply whose
lines carry different codes as its last line's code, so ``StrictReplyProtocol`` checks the raw lines
first, and a reply outside the grammar is a broken conversation ("garbage"), never an answer.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import time
from dataclasses import dataclass, field

import aiosmtplib
import aiosmtplib.smtp
from aiosmtplib import errors
from aiosmtplib.esmtp import parse_esmtp_extensions
from aiosmtplib.protocol import SMTPProtocol
from aiosmtplib.typing import SMTPStatus

from relaytests.probe import pacing
from relaytests.probe.report import TranscriptLine
from relaytests.probe.sanitise import safe_text

MAX_KEPT_LINE = 512  # characters of one transcript line we keep
MAX_KEPT_REPLY = 2048  # characters of one reply we keep in a vector result
MAX_TRANSCRIPT_LINES = 4000  # per host; the rest is summarised in one line
MAX_FAILURE_DETAIL = 300  # characters of a failure's description (it may quote the server)
# Characters kept of a greeting that is no SMTP reply (an SSH or IMAP server): enough to
# recognise the service, too few to echo what it tells about itself to whoever registered the port.
MAX_FOREIGN_GREETING = 40
# One line of a reply: a code from 200 to 599, then a space, a hyphen (more lines follow) or the end.
REPLY_LINE = re.compile(rb"[2-5][0-9][0-9](?:[ -]|\r?\n)")


class NotAReplyLine(errors.SMTPResponseException):
    """A line that is no SMTP reply line; `line` is its raw bytes (at most aiosmtplib's 8 KiB)."""

    def __init__(self, line: bytes):
        super().__init__(SMTPStatus.invalid_response, f"not an SMTP reply line: {line!r}")
        self.line = line


class StrictReplyProtocol(SMTPProtocol):
    """aiosmtplib's protocol, refusing what is not a reply before aiosmtplib reads it leniently.

    It also times the server: from the last byte we wrote (or the connection, for the greeting) to
    the first byte of the answer, so that what we measure is the server's delay, not our own.
    """

    sent_at = 0.0
    answered_at: float | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.sent_at, self.answered_at = time.monotonic(), None

    def write(self, data: bytes) -> None:
        super().write(data)
        self.sent_at, self.answered_at = time.monotonic(), None

    def data_received(self, data: bytes) -> None:
        if self.answered_at is None:
            self.answered_at = time.monotonic()
        super().data_received(data)

    def _read_response_from_buffer(self):
        _check_reply_lines(self._buffer)
        return super()._read_response_from_buffer()


# aiosmtplib builds its protocol from this name in SMTP._create_connection and offers no factory to
# pass; the strict reader accepts every reply RFC 5321 allows, so no other client loses anything.
# mypy refuses assigning to a class name; replacing it is the point.
aiosmtplib.smtp.SMTPProtocol = StrictReplyProtocol  # type: ignore[misc]


def _check_reply_lines(buffer: bytearray) -> None:
    """Raise aiosmtplib's "invalid response" error when the first reply in the buffer breaks the grammar."""
    code, start = None, 0
    while (end := buffer.find(b"\n", start)) != -1:
        line = bytes(buffer[start : end + 1])
        start = end + 1
        if not REPLY_LINE.match(line):
            raise NotAReplyLine(line)
        if code is not None and line[:3] != code:
            raise errors.SMTPResponseException(
                SMTPStatus.invalid_response, f"one reply with two codes: {code.decode()}, then {line!r}"
            )
        code = line[:3]
        if line[3:4] != b"-":
            return


@dataclass(frozen=True)
class Reply:
    code: int
    text: str  # the reply's lines joined by newlines, without the codes

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    @property
    def first_line(self) -> str:
        return f"{self.code} {self.lines[0]}".strip()

    @property
    def is_positive(self) -> bool:
        return 200 <= self.code < 400

    def wire_lines(self) -> list[str]:
        """The reply as the server wrote it: '250-first', ..., '250 last'."""
        lines = self.lines
        return [f"{self.code}{'-' if i < len(lines) - 1 else ' '}{line}" for i, line in enumerate(lines)]


class SessionFailure(Exception):
    """The conversation broke: reason is timeout, dropped, garbage, not_smtp, unreachable or tls_failed."""

    def __init__(self, reason: str, detail: str, reply: Reply | None = None, greeting: str = ""):
        detail = safe_text(detail, MAX_FAILURE_DETAIL)  # it quotes the server and the TLS library
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.reply = reply  # the server's last words, when it said any (421 at connect ...)
        self.greeting = greeting  # the first words of a greeting that is no SMTP reply

    @property
    def banner(self) -> str:
        """What the server said on connecting, as far as a report keeps it ("" when nothing)."""
        return self.reply.first_line if self.reply else self.greeting


@dataclass
class Transcript:
    """Every line sent and received on all connections to one host, with timestamps."""

    started: float = field(default_factory=time.monotonic)
    offset: float = 0.0  # seconds between the run's start and this host's start
    lines: list[TranscriptLine] = field(default_factory=list)
    connections: int = 0
    dropped: int = 0

    def new_connection(self) -> int:
        self.connections += 1
        return self.connections

    def add(self, direction: str, line: str, conn: int, *, sanitised: bool = False) -> None:
        """One line; `sanitised` when it already passed ``safe_text`` (a reply: it is cleaned once)."""
        if len(self.lines) >= MAX_TRANSCRIPT_LINES:
            self.dropped += 1
            return
        t = round(self.offset + time.monotonic() - self.started, 3)
        kept = line[:MAX_KEPT_LINE] if sanitised else safe_text(line, MAX_KEPT_LINE)
        self.lines.append(TranscriptLine(direction, kept, t, conn))

    def finish(self) -> list[TranscriptLine]:
        if self.dropped:
            last = self.lines[-1]
            self.lines.append(
                TranscriptLine("C", f"(... {self.dropped} more lines not kept)", last.t, last.conn)
            )
        return self.lines


def _unverified_tls_context() -> ssl.SSLContext:
    """A client context with the same protocols and options as ssl.create_default_context(), without
    the system's CA certificates, which nothing is verified against here: loading them cost 20 ms of
    CPU a TLS connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we record the certificate; we do not judge relaying by it
    return context


@dataclass
class TlsInfo:
    version: str
    certificate_der: bytes | None


class SmtpSession:
    """One connection to one host. Use ``async with SmtpSession(...) as session``."""

    def __init__(
        self,
        address: str,
        port: int,
        transcript: Transcript,
        *,
        command_timeout: float,
        connect_timeout: float,
        source_address: str | None = None,
        slow_reply_seconds: float = 1.0,
        implicit_tls: bool = False,
    ):
        self.address = address
        self.port = port
        self.transcript = transcript
        self.conn = transcript.new_connection()
        self.command_timeout = command_timeout
        self.round_trips = 0
        self.errors = 0  # 4xx/5xx replies on this connection (servers count these)
        self.slow_reply_seconds = slow_reply_seconds
        self.errors_before_slowdown: int | None = None
        self._errors_before_noise: int | None = None  # one slow reply while our loop lagged: maybe ours
        self.fast_replies = 0  # replies quicker than slow_reply_seconds
        self.slowest_reply = 0.0  # seconds, of the server's delays (see _server_delay)
        self.last_reply_seconds = 0.0
        self.connect_seconds = 0.0  # what this connection cost before its first command: greeting and EHLO
        self.extensions: dict[str, str] = {}
        self.helo_name = ""
        self.tls = False
        self.implicit_tls = implicit_tls  # TLS from the first byte (RFC 8314), before the greeting
        self.tls_info: TlsInfo | None = None  # the handshake's, once TLS is up
        self.local_address: str | None = None  # the probe's own address on this connection
        self._smtp = aiosmtplib.SMTP(
            hostname=address,
            port=port,
            timeout=connect_timeout,
            start_tls=False,
            use_tls=implicit_tls,
            tls_context=_unverified_tls_context() if implicit_tls else None,
            validate_certs=False,
            source_address=(source_address, 0) if source_address else None,
            local_hostname="localhost",  # never used: we always send our own EHLO
        )

    async def __aenter__(self) -> SmtpSession:
        await self.open()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def open(self) -> Reply:
        started = time.monotonic()
        if self.implicit_tls:
            self._say("(TLS handshake before the greeting: implicit TLS, RFC 8314)")
        try:
            response = await self._smtp.connect()
        except errors.SMTPConnectResponseError as exc:
            reply = self._record_reply(exc.code, exc.message)
            self._smtp.close()
            raise SessionFailure(
                "refused_greeting", f"the server greeted with {reply.first_line}", reply
            ) from None
        except NotAReplyLine as exc:
            raise self._not_smtp(exc.line) from None
        except errors.SMTPConnectTimeoutError:
            raise self._failure("timeout", "no connection or no greeting within the time limit") from None
        except OverflowError:  # asyncio's own complaint about a port above 65535
            raise self._failure("unreachable", f"port {self.port} does not exist (1-65535)") from None
        except (errors.SMTPConnectError, OSError) as exc:
            cause = exc.__cause__ or exc
            if isinstance(cause, ssl.SSLError):
                raise self._failure("tls_failed", f"TLS handshake failed: {cause}") from None
            number = getattr(cause, "errno", None)
            why = os.strerror(number) if number else str(cause)
            raise self._failure("unreachable", f"could not connect to port {self.port}: {why}") from None
        except errors.SMTPException as exc:
            raise self._broken(exc) from None
        greeting = self._record_reply(response.code, response.message)
        if self.implicit_tls:
            self._tls_started()
        self.connect_seconds, _ = await self._server_delay(self._smtp.protocol, started)
        sockname = self._smtp.get_transport_info("sockname")
        self.local_address = sockname[0] if sockname else None
        return greeting

    async def hello(self, name: str) -> Reply:
        """EHLO, and HELO when the server does not speak ESMTP."""
        self.helo_name = name
        reply = await self._hello("EHLO", name)
        self.connect_seconds += self.last_reply_seconds
        if reply.code >= 500:
            reply = await self._hello("HELO", name)
            self.connect_seconds += self.last_reply_seconds
        return reply

    async def _hello(self, verb: str, name: str) -> Reply:
        method = self._smtp.ehlo if verb == "EHLO" else self._smtp.helo
        self._say(f"{verb} {name}")
        try:
            response = await self._timed(method(hostname=name, timeout=self.command_timeout))
        except errors.SMTPHeloError as exc:
            return self._record_reply(exc.code, exc.message)
        except errors.SMTPException as exc:
            raise self._broken(exc) from None
        reply = self._record_reply(response.code, response.message)
        self.extensions = _parse_extensions(reply) if verb == "EHLO" else {}
        return reply

    async def command(self, verb: str, argument: str = "") -> Reply:
        """One command, then its full reply (no pipelining, ever)."""
        line = f"{verb} {argument}" if argument else verb
        self._say(line)
        try:
            response = await self._timed(
                self._smtp.execute_command(*line.encode("utf-8").split(b" ", 1), timeout=self.command_timeout)
            )
        except ValueError as exc:  # aiosmtplib refuses control characters: never sent
            raise SessionFailure("garbage", f"refused to send {line!r}: {exc}") from None
        except errors.SMTPException as exc:
            raise self._broken(exc) from None
        reply = self._record_reply(response.code, response.message)
        if reply.code >= 400:
            self.errors += 1
        if reply.code == 421:
            self._smtp.close()  # the server is closing; aiosmtplib keeps it open otherwise
        return reply

    async def data(self, message: bytes) -> Reply:
        """DATA, the message, and the end-of-data reply (where servers that decide late refuse)."""
        self._say("DATA")
        self._say(f"(after the server's 354: the test message, {len(message)} bytes)")
        self._say(".")
        try:
            response = await self._timed(self._smtp.data(message, timeout=self.command_timeout))
        except errors.SMTPDataError as exc:
            self.errors += 1
            return self._record_reply(exc.code, exc.message)
        except errors.SMTPException as exc:
            raise self._broken(exc) from None
        return self._record_reply(response.code, response.message)

    async def bdat(self, message: bytes) -> Reply:
        """The message in one BDAT chunk (RFC 3030), its reply the end-of-data reply; for CHUNKING servers.

        The chunk follows the command line at once, as RFC 3030 wants (no reply comes between them),
        and is sent as it is: BDAT knows no dot-stuffing. aiosmtplib has no BDAT, so this writes the
        bytes on its protocol and reads the one reply, as its own commands do.
        """
        self._say(f"BDAT {len(message)} LAST")
        self._say(f"(the test message, {len(message)} bytes, in the same write)")
        protocol = self._smtp.protocol
        if protocol is None or not self._smtp.is_connected:
            raise self._failure("dropped", "the server closed the connection")
        try:
            response = await self._timed(self._chunk(protocol, message))
        except errors.SMTPException as exc:
            raise self._broken(exc) from None
        reply = self._record_reply(response.code, response.message)
        if reply.code >= 400:
            self.errors += 1
        return reply

    async def _chunk(self, protocol: SMTPProtocol, message: bytes):
        protocol._response_pending = True  # as execute_command marks it: a reply is due
        protocol.write(f"BDAT {len(message)} LAST\r\n".encode() + message)
        try:
            return await protocol.read_response(timeout=self.command_timeout)
        except (errors.SMTPServerDisconnected, errors.SMTPTimeoutError):
            self._smtp.close()  # as aiosmtplib does after a lost or timed-out command
            raise

    async def starttls(self) -> TlsInfo:
        self._say("STARTTLS")
        try:
            response = await self._timed(
                self._smtp.starttls(tls_context=_unverified_tls_context(), timeout=self.command_timeout)
            )
        except errors.SMTPResponseException as exc:
            if exc.code == SMTPStatus.invalid_response:
                raise self._broken(exc) from None
            reply = self._record_reply(exc.code, exc.message)
            raise SessionFailure("tls_failed", f"STARTTLS refused: {reply.first_line}", reply) from None
        except (errors.SMTPException, ssl.SSLError, OSError) as exc:
            raise self._failure("tls_failed", f"TLS handshake failed: {exc}") from None
        self._record_reply(response.code, response.message)
        self.extensions = {}
        return self._tls_started()

    def _tls_started(self) -> TlsInfo:
        ssl_object = self._smtp.get_transport_info("ssl_object")
        self.tls = True
        self.tls_info = TlsInfo(ssl_object.version() or "", ssl_object.getpeercert(binary_form=True))
        return self.tls_info

    @property
    def started_tls(self) -> bool:
        """TLS by STARTTLS on this connection: the plain session it began as is gone."""
        return self.tls and not self.implicit_tls

    async def close(self) -> None:
        """QUIT politely when the connection still stands (and is not tarpitted), then close it."""
        if self._smtp.is_connected and not self.slowed_down:
            try:
                await self.command("QUIT")
            except SessionFailure:
                pass  # the server went away first: nothing left to close politely
        self._smtp.close()

    @property
    def is_open(self) -> bool:
        return self._smtp.is_connected

    async def _timed(self, awaitable):
        protocol, started = self._smtp.protocol, time.monotonic()
        try:
            result = await awaitable
        except asyncio.CancelledError:
            # Stopped (a deadline, the run cancelled) with a reply due: that reply would answer whatever
            # came next, a polite QUIT included, which could wait out the whole command timeout.
            self._smtp.close()
            raise
        except BaseException:
            self._count_reply(time.monotonic() - started, under_load=False)  # no reply in time is slow
            raise
        self._count_reply(*await self._server_delay(protocol, started))
        return result

    async def _server_delay(self, protocol: SMTPProtocol | None, started: float) -> tuple[float, bool]:
        """The server's delay before its reply, less our loop's lag when it came; and whether we lagged.

        A delay under the slow mark needs no correction (lag only ever adds to it).
        """
        if not isinstance(protocol, StrictReplyProtocol):  # it always is once connected (see above)
            protocol = None
        sent = protocol.sent_at if protocol else started
        answered = protocol.answered_at if protocol and protocol.answered_at else time.monotonic()
        delay = max(0.0, answered - sent)
        if delay < self.slow_reply_seconds:
            return delay, False
        lag = await pacing.lag_monitor().lag_around(answered)
        return max(0.0, delay - lag), pacing.under_load(lag, delay)

    def _count_reply(self, seconds: float, under_load: bool) -> None:
        """A slow reply means a tarpit began (it counts our errors); a single one under load is noise."""
        self.round_trips += 1
        self.last_reply_seconds = seconds
        self.slowest_reply = max(self.slowest_reply, seconds)
        if seconds < self.slow_reply_seconds:
            self.fast_replies += 1
            self._errors_before_noise = None
        elif under_load and self._errors_before_noise is None and not self.slowed_down:
            self._errors_before_noise = self.errors  # the next reply decides
        elif self.errors_before_slowdown is None:
            noise = self._errors_before_noise
            self.errors_before_slowdown = self.errors if noise is None else noise

    @property
    def slowed_down(self) -> bool:
        return self.errors_before_slowdown is not None

    @property
    def slows_every_reply(self) -> bool:
        """A tarpit from the first command on, not one that counts errors: reconnecting gains nothing.

        Two replies, not one: a single slow EHLO is often the server's own DNS lookup of the probe.
        """
        return self.round_trips >= 2 and self.fast_replies == 0

    def _say(self, line: str) -> None:
        self.transcript.add("C", line, self.conn)

    def _record_reply(self, code: int, message: str) -> Reply:
        text = "\n".join(safe_text(line, MAX_KEPT_REPLY) for line in message.split("\n"))
        reply = Reply(code, text[:MAX_KEPT_REPLY])
        for line in reply.wire_lines():
            self.transcript.add("S", line, self.conn, sanitised=True)
        return reply

    def _failure(self, reason: str, detail: str) -> SessionFailure:
        self._smtp.close()
        return SessionFailure(reason, detail)

    def _not_smtp(self, line: bytes) -> SessionFailure:
        """Another service on the port: keep its first words only, in the transcript and the failure."""
        first_words = safe_text(line.strip(), MAX_FOREIGN_GREETING)
        self.transcript.add("S", first_words, self.conn)
        self._smtp.close()
        detail = f"not an SMTP server: it greeted with {first_words!r}"
        return SessionFailure("not_smtp", detail, greeting=first_words)

    def _broken(self, exc: errors.SMTPException) -> SessionFailure:
        """Translate aiosmtplib's exceptions into our failure reasons."""
        if isinstance(exc, errors.SMTPTimeoutError):
            return self._failure("timeout", "the server did not answer within the time limit")
        if isinstance(exc, errors.SMTPServerDisconnected):
            return self._failure("dropped", "the server closed the connection")
        if isinstance(exc, errors.SMTPResponseException) and exc.code == -1:
            return self._failure("garbage", f"unreadable reply: {exc.message}")
        return self._failure("dropped", f"connection failed: {exc}")


def _parse_extensions(reply: Reply) -> dict[str, str]:
    """EHLO keywords (upper case) and their parameters, read by aiosmtplib from the sanitised reply
    (it also understands the old "AUTH=LOGIN" advertisement)."""
    extensions, _ = parse_esmtp_extensions(reply.text)
    return {keyword.upper(): params for keyword, params in extensions.items()}
