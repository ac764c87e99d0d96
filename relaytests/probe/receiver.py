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
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from typing import cast

from aiosmtpd.smtp import SMTP, Envelope, Session

from relaytests.probe.callbacks import Callback, call
from relaytests.probe.canary import RECIPIENT, CanaryToken, parse_token
from relaytests.probe.sanitise import safe_text

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
    # A relay delivers in parallel (Postfix: up to 20 connections to one destination): the peer's
    # connections beyond its share wait for a slot of their own before their greeting, rather than
    # be turned away (a 421 would defer the test message for minutes, past the canary wait).
    max_held_per_peer: int = 15
    hold_seconds: float = 60.0  # well within a client's wait for the greeting (5 minutes, RFC 5321)
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
        return {
            "received_at": self.received_at.isoformat(timespec="milliseconds"),
            "peer_address": self.peer_address,
            "received_chain": list(self.received_chain),
            "late": late,
        }


OnMessage = Callback[list[Delivery]]
MAX_MESSAGE_ID_CHARS = 200


def received_chain(content: bytes, limits: ReceiverLimits = DEFAULT_LIMITS) -> tuple[str, ...]:
    """The Received headers of a message in header order, each unfolded and length-bounded."""
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(content)
    values = headers.get_all("Received", [])[: limits.max_received_headers]
    hops = tuple(safe_text(" ".join(str(value).split()), limits.max_header_chars) for value in values)
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
    if message_id and len(message_id) <= MAX_MESSAGE_ID_CHARS and message_id == safe_text(message_id, None):
        return message_id  # kept as it is only when it is plain text: the key is stored
    return "sha256:" + hashlib.sha256(message_id.encode() if message_id else content).hexdigest()


class CanaryHandler:
    """aiosmtpd handler: decides at RCPT, records at DATA."""

    def __init__(
        self, domain: str, secret: str, on_message: OnMessage, limits: ReceiverLimits = DEFAULT_LIMITS
    ):
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
            if deliveries:
                await call(self.on_message, deliveries)
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
    """One SMTP conversation: greeted once the receiver gives it a slot, closed at its time limit."""

    def __init__(
        self,
        handler: CanaryHandler,
        *,
        limits: ReceiverLimits,
        hostname: str,
        arrived: Callable[[_BoundedSession], None],
        closed: Callable[[_BoundedSession], None],
    ):
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
        self._on_arrival, self._on_close = arrived, closed
        self._connection: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.peer_address = ""
        self.started = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.peer_address = peer[0] if isinstance(peer, tuple) else str(peer or "")
        self._connection = cast(asyncio.Transport, transport)  # a stream server's transport
        self._on_arrival(self)  # the receiver starts it, holds it or hangs up

    @property
    def _held_connection(self) -> asyncio.Transport:
        """The connection `connection_made` handed over: the receiver only acts on a session after that."""
        assert self._connection is not None, "no connection yet"
        return self._connection

    def start(self) -> None:
        """Greet: the conversation has its slot."""
        self._cancel_timer()
        self.started = True
        self._held_connection.resume_reading()
        super().connection_made(self._held_connection)
        self._timer = self.loop.call_later(self._session_seconds, self.hang_up, SESSION_EXPIRED)

    def hold(self, seconds: float) -> None:
        """No greeting (and nothing read) until `start`; hung up on when no slot frees within `seconds`."""
        self._held_connection.pause_reading()
        self._timer = self.loop.call_later(seconds, self.hang_up, TOO_MANY_FROM_PEER)

    def hang_up(self, reply: bytes) -> None:
        self._held_connection.write(reply)
        self._held_connection.close()

    def connection_lost(self, error: Exception | None) -> None:
        self._cancel_timer()
        self._on_close(self)
        if self.started:  # else no SMTP conversation was begun, nothing to end
            super().connection_lost(error)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class CanaryReceiver:
    """The receiver on one address and port, in the running event loop: `async with` or start/stop.

    Port 0 takes a free port; `port` then tells which. A plain function as `on_message` runs in
    the event loop, so it must be quick; anything slow (the database) belongs in a coroutine or
    behind `sync_to_async`, as the `canary` command does.
    """

    def __init__(
        self,
        domain: str,
        secret: str,
        on_message: OnMessage,
        *,
        host: str = "127.0.0.1",
        port: int = 2525,
        limits: ReceiverLimits = DEFAULT_LIMITS,
        hostname: str | None = None,
    ):
        self.handler = CanaryHandler(domain, secret, on_message, limits)
        self.host, self.port = host, port
        self.limits = limits
        self.hostname = hostname or self.handler.domain
        self._server: asyncio.Server | None = None
        self._sessions: set[_BoundedSession] = set()  # in conversation
        self._held: dict[str, deque[_BoundedSession]] = {}  # by peer: waiting for a slot of their peer's

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_session, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("canary receiver for %s listening on %s:%s", self.handler.domain, self.host, self.port)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for session in [*self._sessions, *(s for held in self._held.values() for s in held)]:
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
        return _BoundedSession(
            self.handler,
            limits=self.limits,
            hostname=self.hostname,
            arrived=self._arrived,
            closed=self._closed,
        )

    def _arrived(self, session: _BoundedSession) -> None:
        """Start the conversation, hold it until one of its peer's ends, or hang up (the peer is known now)."""
        if len(self._sessions) >= self.limits.max_sessions:
            log.warning("canary: refused a connection, %d sessions open", len(self._sessions))
            session.hang_up(TOO_MANY_SESSIONS)
            return
        peer = session.peer_address
        if sum(1 for s in self._sessions if s.peer_address == peer) < self.limits.max_sessions_per_peer:
            self._begin(session)
            return
        held = self._held.setdefault(peer, deque())
        if len(held) >= self.limits.max_held_per_peer:
            log.warning("canary: refused a connection from %s, %d more waiting", peer, len(held))
            session.hang_up(TOO_MANY_FROM_PEER)
            return
        held.append(session)
        session.hold(self.limits.hold_seconds)

    def _begin(self, session: _BoundedSession) -> None:
        self._sessions.add(session)
        session.start()

    def _closed(self, session: _BoundedSession) -> None:
        """A conversation's slot goes to the next held connection of the same peer."""
        held = self._held.get(session.peer_address, deque())
        if session in self._sessions:
            self._sessions.discard(session)
            if held:
                self._begin(held.popleft())
        elif session in held:
            held.remove(session)
        if not held:
            self._held.pop(session.peer_address, None)
