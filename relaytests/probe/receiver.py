"""The canary receiver: the SMTP server of the canary domain, which records relayed test messages.

It accepts mail only for well-formed canary tokens whose MAC is valid, at the canary domain, and
refuses every other recipient at RCPT with 550: it can never relay, nor store mail for anyone
else. MAIL FROM is accepted from anyone, so sender-verification callouts for the probe's ``b-``
sender tokens succeed (their RCPT gets 250 too, when the token is valid). Each accepted
message with a recipient token becomes one `Delivery` per token, handed to ``on_delivery``.

Plain asyncio (aiosmtpd); the portal's ``canary`` command and the ``relaytest`` CLI both run it.
Every session is bounded: message size, commands per session, idle time, total time, and the
number of sessions at once.
"""

from __future__ import annotations

import asyncio
import email.policy
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser

from aiosmtpd.smtp import SMTP, Envelope, Session

from relaytests.probe.canary import RECIPIENT, CanaryToken, parse_token
from relaytests.probe.sanitise import safe_text

log = logging.getLogger(__name__)

REFUSED = "550 5.1.1 Not a canary address: this server accepts test messages for its own tokens only"
ACCEPTED_RCPT = "250 2.1.5 Canary address OK"
RECORDED = "250 2.0.0 Test message recorded, thank you"
NOT_RECORDED = "451 4.3.0 Could not record the test message; try again later"
TOO_MANY_SESSIONS = b"421 4.7.0 Too many connections to the canary receiver, try again later\r\n"
SESSION_EXPIRED = b"421 4.4.2 Session time limit reached, closing\r\n"
GREETING_IDENT = "ESMTP relaytest canary receiver (accepts relay test messages only)"


@dataclass(frozen=True)
class ReceiverLimits:
    max_message_bytes: int = 128 * 1024  # the probe's test message is about 1 KB
    max_sessions: int = 50
    idle_seconds: float = 60.0  # between two commands
    session_seconds: float = 300.0  # the whole conversation
    # Commands per session: enough for a relay that batches every vector of a run on one connection.
    command_limits: dict[str, int] = field(
        default_factory=lambda: {"MAIL": 200, "RCPT": 400, "DATA": 200, "RSET": 400, "*": 20}
    )
    max_received_headers: int = 64
    max_header_chars: int = 1000


DEFAULT_LIMITS = ReceiverLimits()


@dataclass(frozen=True)
class Delivery:
    """One canary token that arrived: the proof that `vector_id` of run `run_id` relayed."""

    token: str
    run_id: str
    vector_id: str
    received_at: datetime
    peer_address: str  # who delivered it to us: the relay itself, or the relay's next hop
    received_chain: tuple[str, ...]  # the message's Received headers, topmost (latest hop) first
    mail_from: str
    rcpt_tos: tuple[str, ...]

    def arrival(self, late: bool = False) -> dict:
        """What the report keeps of it (`suite.settle_deliveries` takes a dict of these by token)."""
        return {"received_at": self.received_at.isoformat(timespec="milliseconds"),
                "peer_address": self.peer_address, "received_chain": list(self.received_chain), "late": late}


OnDelivery = Callable[[Delivery], Awaitable[None] | None]


def received_chain(content: bytes, limits: ReceiverLimits = DEFAULT_LIMITS) -> tuple[str, ...]:
    """The Received headers of a message in header order, each unfolded and length-bounded."""
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(content)
    values = headers.get_all("Received", [])[: limits.max_received_headers]
    return tuple(safe_text(" ".join(str(value).split()), limits.max_header_chars) for value in values)


class CanaryHandler:
    """aiosmtpd handler: decides at RCPT, records at DATA."""

    def __init__(self, domain: str, secret: str, on_delivery: OnDelivery,
                 limits: ReceiverLimits = DEFAULT_LIMITS):
        self.domain = domain.strip().rstrip(".").lower()
        self.secret = secret
        self.on_delivery = on_delivery
        self.limits = limits

    def token_in(self, address: str) -> CanaryToken | None:
        """The valid token an address carries at the canary domain, else None."""
        local_part, at, domain = address.rpartition("@")
        if not at or domain.lower() != self.domain:
            return None
        return parse_token(self.secret, local_part)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options):
        if self.token_in(address) is None:
            log.info("canary: refused RCPT %r from %s", address, _peer(session))
            return REFUSED
        envelope.rcpt_tos.append(address)
        return ACCEPTED_RCPT

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        deliveries = self.deliveries(envelope, _peer(session))
        if not deliveries:
            log.info("canary: message from %s for sender tokens only (a bounce)", _peer(session))
        try:
            for delivery in deliveries:
                result = self.on_delivery(delivery)
                if inspect.isawaitable(result):
                    await result
        except Exception:
            # The relay keeps the message and tries again: a delivery is never silently lost.
            log.exception("canary: recording a delivery from %s failed", _peer(session))
            return NOT_RECORDED
        return RECORDED

    def deliveries(self, envelope: Envelope, peer: str) -> list[Delivery]:
        received_at = datetime.now(UTC)
        chain = received_chain(envelope.original_content or b"", self.limits)
        tokens = [(address, self.token_in(address)) for address in envelope.rcpt_tos]
        return [
            Delivery(
                token=address.rpartition("@")[0].lower(),
                run_id=token.run_id,
                vector_id=token.vector_id,
                received_at=received_at,
                peer_address=peer,
                received_chain=chain,
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
            )
            for address, token in tokens
            if token is not None and token.kind == RECIPIENT
        ]


def _peer(session: Session) -> str:
    return session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "")


class _BoundedSession(SMTP):
    """One SMTP conversation, closed when it outlives the receiver's session time limit."""

    def __init__(self, handler: CanaryHandler, *, limits: ReceiverLimits, hostname: str,
                 on_closed: Callable[[_BoundedSession], None]):
        super().__init__(
            handler,
            data_size_limit=limits.max_message_bytes,
            timeout=limits.idle_seconds,
            command_call_limit=limits.command_limits,
            hostname=hostname,
            ident=GREETING_IDENT,
            loop=asyncio.get_running_loop(),
        )
        self._session_seconds = limits.session_seconds
        self._on_closed = on_closed
        self._expiry: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._expiry = self.loop.call_later(self._session_seconds, self._expire)

    def connection_lost(self, error: Exception | None) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        self._on_closed(self)
        super().connection_lost(error)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _expire(self) -> None:
        if self.transport is not None:
            self.transport.write(SESSION_EXPIRED)
            self.transport.close()


class _TooManySessions(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(TOO_MANY_SESSIONS)  # type: ignore[attr-defined]
        transport.close()


class CanaryReceiver:
    """The receiver on one address and port, in the running event loop: `async with` or start/stop.

    Port 0 takes a free port; `port` then tells which. A plain function as `on_delivery` runs in
    the event loop, so it must be quick; anything slow (the database) belongs in a coroutine or
    behind `sync_to_async`, as the `canary` command does.
    """

    def __init__(self, domain: str, secret: str, on_delivery: OnDelivery, *, host: str = "127.0.0.1",
                 port: int = 2525, limits: ReceiverLimits = DEFAULT_LIMITS, hostname: str | None = None):
        self.handler = CanaryHandler(domain, secret, on_delivery, limits)
        self.host, self.port = host, port
        self.limits = limits
        self.hostname = hostname or self.handler.domain
        self._server: asyncio.Server | None = None
        self._sessions: set[_BoundedSession] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_session, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("canary receiver for %s listening on %s:%s", self.handler.domain, self.host, self.port)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for session in list(self._sessions):
            session.close()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> CanaryReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    def _new_session(self) -> asyncio.Protocol:
        if len(self._sessions) >= self.limits.max_sessions:
            log.warning("canary: refused a connection, %d sessions open", len(self._sessions))
            return _TooManySessions()
        session = _BoundedSession(self.handler, limits=self.limits, hostname=self.hostname,
                                  on_closed=self._sessions.discard)
        self._sessions.add(session)
        return session
