"""The canary receiver: the SMTP server of the canary domain, which records relayed test messages.

It accepts mail only for well-formed canary tokens whose MAC is valid, at the canary domain, and
refuses every other recipient at RCPT with 550: it can never relay, nor store mail for anyone
else. MAIL FROM is accepted from anyone, so sender-verification callouts for the probe's ``b-``
sender tokens succeed (their RCPT gets 250 too, when the token is valid). Each accepted
message with recipient tokens becomes one `Delivery` per distinct token, and the message's
deliveries are handed to ``on_message`` together: it stores all of them or none (the receiver
answers 451 when it raises, so the sender retries; a retry carries the same `message_key`).

Plain asyncio (aiosmtpd); the portal's ``canary`` command and the ``relaytest`` CLI both run it.
Every session is bounded: message size, recipients per message, commands per session, idle time,
total time, the number of sessions at once and per peer address, and what a Received chain keeps.
"""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser

from aiosmtpd.smtp import SMTP, Envelope, Session

from relaytests.probe.canary import RECIPIENT, CanaryToken, parse_token

log = logging.getLogger(__name__)

REFUSED = "550 5.1.1 Not a canary address: this server accepts test messages for its own tokens only"
ACCEPTED_RCPT = "250 2.1.5 Canary address OK"
RECORDED = "250 2.0.0 Test message recorded, thank you"
NOT_RECORDED = "451 4.3.0 Could not record the test message; try again later"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
TOO_MANY_SESSIONS = b"421 4.7.0 Too many connections to the canary receiver, try again later\r\n"
TOO_MANY_FROM_PEER = b"421 4.7.0 Too many connections from your address, try again later\r\n"
SESSION_EXPIRED = b"421 4.4.2 Session time limit reached, closing\r\n"
GREETING_IDENT = "ESMTP relaytest canary receiver (accepts relay test messages only)"


@dataclass(frozen=True)
class ReceiverLimits:
    max_message_bytes: int = 128 * 1024  # the probe's test message is about 1 KB
    max_sessions: int = 50
    max_sessions_per_peer: int = 5  # so that one client cannot hold every slot
    max_recipients: int = 5  # per message: a relay sends one token per message, a batch a few
    idle_seconds: float = 60.0  # between two commands
    session_seconds: float = 300.0  # the whole conversation
    # Commands per session: enough for a relay that batches every vector of a run on one connection.
    command_limits: dict[str, int] = field(
        default_factory=lambda: {"MAIL": 200, "RCPT": 400, "DATA": 200, "RSET": 400, "*": 20}
    )
    max_received_headers: int = 30
    max_header_chars: int = 1000
    max_chain_bytes: int = 8 * 1024  # all of a message's Received headers together, UTF-8


DEFAULT_LIMITS = ReceiverLimits()


@dataclass(frozen=True)
class Delivery:
    """One canary token that arrived: the proof that `vector_id` of run `run_id` relayed."""

    token: str
    run_id: str
    host_tag: str  # canary.host_tag of the host the token was sent to
    vector_id: str
    received_at: datetime
    peer_address: str  # who delivered it to us: the relay itself, or the relay's next hop
    received_chain: tuple[str, ...]  # the message's Received headers, topmost (latest hop) first
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message_key: str  # the same for a sender's retry of one message (message_key())

    def arrival(self, late: bool = False) -> dict:
        """What the report keeps of it (`suite.settle_deliveries` takes a dict of these by token)."""
        return {"received_at": self.received_at.isoformat(timespec="milliseconds"),
                "peer_address": self.peer_address, "received_chain": list(self.received_chain), "late": late}


OnMessage = Callable[[list[Delivery]], Awaitable[None] | None]
MAX_MESSAGE_ID_CHARS = 200


def received_chain(content: bytes, limits: ReceiverLimits = DEFAULT_LIMITS) -> tuple[str, ...]:
    """The Received headers of a message in header order, each unfolded and length-bounded."""
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(content)
    values = headers.get_all("Received", [])[: limits.max_received_headers]
    hops = tuple(" ".join(str(value).split())[: limits.max_header_chars] for value in values)
    return _within_bytes(hops, limits.max_chain_bytes)


def _within_bytes(hops: tuple[str, ...], limit: int) -> tuple[str, ...]:
    """The topmost hops (the latest, nearest the canary) that fit in `limit` bytes together."""
    kept, size = [], 0
    for hop in hops:
        size += len(hop.encode())
        if size > limit:
            break
        kept.append(hop)
    return tuple(kept)


def message_key(content: bytes) -> str:
    """What a sender's retry of a message shares with the first try: its Message-ID, else a hash."""
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(content)
    message_id = " ".join(str(headers.get("Message-ID", "")).split())
    if message_id and len(message_id) <= MAX_MESSAGE_ID_CHARS:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode() if message_id else content).hexdigest()


class CanaryHandler:
    """aiosmtpd handler: decides at RCPT, records at DATA."""

    def __init__(self, domain: str, secret: str, on_message: OnMessage,
                 limits: ReceiverLimits = DEFAULT_LIMITS):
        self.domain = domain.strip().rstrip(".").lower()
        self.secret = secret
        self.on_message = on_message
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
        if len(envelope.rcpt_tos) >= self.limits.max_recipients:
            return TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        return ACCEPTED_RCPT

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        deliveries = self.deliveries(envelope, _peer(session))
        if not deliveries:
            log.info("canary: message from %s for sender tokens only (a bounce)", _peer(session))
        try:
            result = self.on_message(deliveries) if deliveries else None
            if inspect.isawaitable(result):
                await result
        except Exception:
            # Nothing was stored: the relay keeps the message and tries again, never silently lost.
            log.exception("canary: recording a delivery from %s failed", _peer(session))
            return NOT_RECORDED
        return RECORDED

    def deliveries(self, envelope: Envelope, peer: str) -> list[Delivery]:
        """One per distinct recipient token of the message (a token given twice is one delivery)."""
        received_at = datetime.now(UTC)
        content = envelope.original_content or b""
        chain, key = received_chain(content, self.limits), message_key(content)
        tokens = {address.rpartition("@")[0].lower(): self.token_in(address) for address in envelope.rcpt_tos}
        return [
            Delivery(
                token=local_part,
                run_id=token.run_id,
                host_tag=token.host_tag,
                vector_id=token.vector_id,
                received_at=received_at,
                peer_address=peer,
                received_chain=chain,
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                message_key=key,
            )
            for local_part, token in tokens.items()
            if token is not None and token.kind == RECIPIENT
        ]


def _peer(session: Session) -> str:
    return session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "")


class _BoundedSession(SMTP):
    """One SMTP conversation, closed when it outlives the receiver's session time limit."""

    def __init__(self, handler: CanaryHandler, *, limits: ReceiverLimits, hostname: str,
                 admit: Callable[[_BoundedSession], bytes | None], on_closed: Callable[[_BoundedSession], None]):
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
        self._admit = admit
        self._on_closed = on_closed
        self._expiry: asyncio.TimerHandle | None = None
        self.peer_address = ""
        self.admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.peer_address = peer[0] if isinstance(peer, tuple) else str(peer or "")
        refusal = self._admit(self)
        if refusal is not None:
            transport.write(refusal)  # type: ignore[attr-defined]
            transport.close()
            return
        self.admitted = True
        super().connection_made(transport)
        self._expiry = self.loop.call_later(self._session_seconds, self._expire)

    def connection_lost(self, error: Exception | None) -> None:
        if not self.admitted:
            return  # turned away at connect: no SMTP conversation was started
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


class CanaryReceiver:
    """The receiver on one address and port, in the running event loop: `async with` or start/stop.

    Port 0 takes a free port; `port` then tells which. A plain function as `on_message` runs in
    the event loop, so it must be quick; anything slow (the database) belongs in a coroutine or
    behind `sync_to_async`, as the `canary` command does.
    """

    def __init__(self, domain: str, secret: str, on_message: OnMessage, *, host: str = "127.0.0.1",
                 port: int = 2525, limits: ReceiverLimits = DEFAULT_LIMITS, hostname: str | None = None):
        self.handler = CanaryHandler(domain, secret, on_message, limits)
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
        return _BoundedSession(self.handler, limits=self.limits, hostname=self.hostname,
                               admit=self._admit, on_closed=self._sessions.discard)

    def _admit(self, session: _BoundedSession) -> bytes | None:
        """Take the connection into a slot, or the reply that turns it away (the peer is known only now)."""
        from_peer = sum(1 for s in self._sessions if s.peer_address == session.peer_address)
        if len(self._sessions) >= self.limits.max_sessions:
            log.warning("canary: refused a connection, %d sessions open", len(self._sessions))
            return TOO_MANY_SESSIONS
        if from_peer >= self.limits.max_sessions_per_peer:
            log.warning("canary: refused a connection from %s, %d sessions open from it", session.peer_address,
                        from_peer)
            return TOO_MANY_FROM_PEER
        self._sessions.add(session)
        return None
