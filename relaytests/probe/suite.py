"""Runs the vector catalogue and the hygiene checks against every host of a target.

Hosts run concurrently, one connection at a time per address and port, and no more than
``max_hosts_in_flight`` hosts at once in the process (see pacing.py). Vectors share a connection with RSET
between them, and the probe reconnects before a server's error limits bite: Postfix slows every
reply after 10 errors and drops the client at 20, Exim drops a session after 10 non-mail
commands, Sendmail and Exchange tarpit. A fresh connection costs one round trip; a tarpit costs
seconds per reply, so the connection budget is small and learnt from the server's behaviour.
A server that delays every reply from the first command on gains nothing from a new connection:
the probe keeps its connection, runs the core vectors first, and starts no vector that would end
past the host's time budget (``host_budget``); the rest is listed as not run.

A reply's delay is the server's: from the last byte sent to the first byte back, less the lag of our
own event loop (session.py), so a busy probe does not take fast servers for tarpits. And reconnecting
must pay for itself: when a connection's greeting and EHLO take longer than a slow reply, the probe
keeps the survey connection for the vectors and packs vectors onto each connection up to the
server's error budget instead of ``max_vectors_per_connection`` (``max_errors_when_connecting_is_slow``,
less where the server was seen to slow down or hang up). A slowdown (Postfix: every reply 1 s late
after 10 errors) is sat out only when the vectors the connection can still carry cost less at its
pace than a new greeting: near the end of the catalogue.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from relaytests.probe import (
    callbacks,
    canary,
    dnschecks,
    fingerprint,
    hygiene,
    message,
    names,
    pacing,
    verdict,
)
from relaytests.probe.report import (
    DEFAULT_VANTAGE,
    Check,
    HostReport,
    ProbeInfo,
    Report,
    VectorResult,
    worst_verdict,
)
from relaytests.probe.session import Reply, SessionFailure, SmtpSession, Transcript
from relaytests.probe.targets import IMPLICIT_TLS_PORT, SMTP_PORT, HostTarget, resolve_target
from relaytests.probe.vectors import Placeholders, Vector, catalogue_version, in_run_order, ip_literal, select
from relaytests.probe.vocabulary import Verdict

LOOPBACK_LITERAL = "[127.0.0.1]"
# The replies a vector on a shared connection waits for: RSET (or a new connection's EHLO), MAIL, RCPT.
REPLIES_PER_VECTOR = 3


@dataclass
class SuiteConfig:
    canary_domain: str
    canary_secret: str
    probe_helo: str = "relaytest.invalid"
    source_address: str | None = None
    command_timeout: float = 60.0
    connect_timeout: float = 30.0
    run_deadline: float = 900.0
    # Seconds one host may take once it is known to delay every reply (a tarpit from the first
    # command): no vector starts that would end past it. The core vectors run first.
    host_budget: float = 240.0
    vector_ids: list[str] | None = None
    local_domain: str | None = None
    internal_networks: tuple[str, ...] = ()
    vantage: str = DEFAULT_VANTAGE  # where this probe tests from, recorded in the report
    run_id: str | None = None
    resolver: str | None = None
    dnsbl_zones: tuple[str, ...] | None = None  # None: dnschecks' default list
    local_user: str = "relaytest"
    # Ports whose sessions start with a TLS handshake (RFC 8314: submission over implicit TLS).
    implicit_tls_ports: tuple[int, ...] = (IMPLICIT_TLS_PORT,)
    # Hosts tested at once by every run in this process together (RELAYTEST_MAX_HOSTS_IN_FLIGHT).
    max_hosts_in_flight: int = 64
    # Connection policy: stay well under the error limits that MTAs enforce (see module docstring).
    max_vectors_per_connection: int = 5  # while connecting is fast; a slow greeting lifts it
    max_errors_per_connection: int = 8
    # While connecting is slow: errors past a slowdown cost its delay, a new connection its greeting.
    # One under Postfix's hard limit: after 20 errors it answers the next command with 421 and hangs
    # up. A server that hangs up sooner is learnt from.
    max_errors_when_connecting_is_slow: int = 19
    slow_reply_seconds: float = 1.0  # a reply this slow means a tarpit began (Postfix sleeps 1 s per error)
    greylist_retry_after: float = 0.0  # 0: report greylisting instead of waiting for it
    # Canary delivery: complete DATA to the canary address of every accepted relay vector.
    send_data: bool = False
    portal_name: str = "Relay Test Portal"
    portal_url: str = ""
    contact: str = ""


@dataclass
class ProgressEvent:
    kind: str  # host_started | vector_done | host_done
    host: HostReport
    vector: VectorResult | None = None


Progress = callbacks.Callback[ProgressEvent]


async def _notify(progress: Progress | None, event: ProgressEvent) -> None:
    if progress is not None:
        await callbacks.call(progress, event)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _inside(address: str | None, networks: tuple[str, ...]) -> bool:
    if not address:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(net) for net in networks)


async def run_suite(
    target: str,
    hosts: list[HostTarget],
    config: SuiteConfig,
    progress: Progress | None = None,
    *,
    mail_domain: str | None = None,
) -> Report:
    """Test every host of a target; the hosts were resolved (and checked) by the caller.

    With `mail_domain`, the domain's MX, SPF and DMARC are checked too, while the hosts are tested.
    """
    run_id = config.run_id or canary.new_run_id()
    vectors = select(config.vector_ids)
    report = Report(
        target=target,
        started_at=_now(),
        run_id=run_id,
        catalogue_version=catalogue_version(),
        probe=_probe_info(config),
    )
    started = time.monotonic()
    deadline = started + config.run_deadline
    share = pacing.loop_share()
    probes = [HostProbe(host, vectors, config, run_id, started, deadline, progress, share) for host in hosts]
    domain_checks = (
        dnschecks.domain_checks(mail_domain, resolver=config.resolver) if mail_domain else _nothing()
    )
    async with pacing.watching_lag(share):
        report.hosts, report.checks = await asyncio.gather(
            asyncio.gather(*(probe.run() for probe in probes)), domain_checks
        )
    _finish(report, probes, config, started)
    return report


async def _nothing() -> list[Check]:
    return []


def _finish(report: Report, probes: list[HostProbe], config: SuiteConfig, started: float) -> None:
    source = config.source_address or next((p.local_address for p in probes if p.local_address), None)
    report.probe.source_address = source
    report.probe.inside_internal_networks = _inside(source, config.internal_networks)
    # A probe that says it is inside is meant to be: only one that reports the outside view is warned.
    if report.probe.inside_internal_networks and config.vantage == DEFAULT_VANTAGE:
        report.checks.append(hygiene.vantage_warning(source))
    _conclude(report)
    report.finished_at = _now()
    report.duration_s = round(time.monotonic() - started, 3)


async def probe_target(
    text: str,
    config: SuiteConfig,
    *,
    ports: tuple[int, ...] = (SMTP_PORT,),
    domain: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Resolve a target (hostname, address or mail domain) and test it on each port; the CLI's entry point."""
    resolved = await resolve_target(text, ports=ports, domain=domain, resolver=config.resolver)
    if resolved.error or not resolved.hosts:
        report = _untestable(resolved.label, config, resolved.error or "no address to test")
        report.checks = resolved.checks
        return report
    report = await run_suite(
        resolved.label, resolved.hosts, config, progress, mail_domain=resolved.label if domain else None
    )
    # The run looked the MX hosts up again, with SPF and DMARC; keep the resolver's other findings.
    report.checks = [c for c in resolved.checks if c.id != "mx"] + report.checks
    return report


def settle_deliveries(report: Report, arrived: dict[str, dict]) -> None:
    """Mark the vectors whose canary arrived; verdicts follow.

    `arrived` maps a recipient token to what the receiver recorded: received_at (ISO 8601),
    peer_address, received_chain (list of Received headers) and late (after the run was final).
    A token names its run, host and vector, and proves that vector on that host only when the host
    took the vector's test message (end of data 2xx). Any other arrival (a forgery, a token of a
    refused vector, of no host of the run) proves nothing: it is listed in `unexpected_deliveries`.
    Called when the canary wait is over, and again whenever a late delivery arrives.
    """
    refusals = {v.id: v.refusals for v in select(None)}
    for host in report.hosts:
        for result in host.vectors:
            if result.token in arrived and took_message(result):
                result.delivered = True
                result.delivery = {
                    **arrived[result.token],
                    "delay_s": _delay(result.sent_at, arrived[result.token]),
                }
        if host.vectors:
            host.verdict, host.reason = verdict.host_verdict(host.vectors, refusals)
            host.checks = [c for c in host.checks if c.id not in verdict.RELAY_WARNING_IDS]
            host.checks += verdict.relay_warnings(host.vectors)
    proven = {v.token for h in report.hosts for v in h.vectors if v.delivered}
    report.unexpected_deliveries = [
        _unexpected(report, token, arrival) for token, arrival in arrived.items() if token not in proven
    ]
    _conclude(report)


def took_message(result: VectorResult) -> bool:
    """The host answered the vector's end of data with 2xx: only then can a canary prove a relay."""
    return result.data_code is not None and 200 <= result.data_code < 300


def _unexpected(report: Report, token: str, arrival: dict) -> dict:
    """An arrival that proves nothing, with the host and vector its token names and why it is no proof."""
    fields = canary.token_fields(token)
    host = next(
        (h for h in report.hosts if fields and canary.host_tag(h.address, h.port) == fields.host_tag), None
    )
    result = next((v for v in host.vectors if v.token == token), None) if host else None
    return {
        "token": token,
        "vector_id": fields.vector_id if fields else "",
        "host": host.address if host else None,
        "port": host.port if host else None,
        "why": _no_proof(host, result),
        **arrival,
    }


def _no_proof(host: HostReport | None, result: VectorResult | None) -> str:
    if host is None:
        return "its token names no host of this run"
    if result is None:
        return "its token names a vector that was not tried on this host"
    if result.outcome != "accepted":
        return (
            f"the server refused this vector ({result.reply or result.reason}), so no test message was sent"
        )
    if result.data_code is None:
        return "no test message was sent for this vector"
    return f"the server did not take this vector's test message ({result.data_reply})"


def _conclude(report: Report) -> None:
    report.verdict = worst_verdict([h.verdict for h in report.hosts])
    report.summary = verdict.summary(report.verdict, [f"{h.address}: {h.reason}." for h in report.hosts])


def _delay(sent_at: str | None, delivery: dict) -> float | None:
    if not sent_at:
        return None
    seconds = datetime.fromisoformat(delivery["received_at"]) - datetime.fromisoformat(sent_at)
    return max(0.0, round(seconds.total_seconds(), 3))  # a relay may deliver before it answers us


def awaited_tokens(report: Report) -> set[str]:
    """The tokens of test messages a server took (end of data 2xx) that have not arrived yet."""
    return {v.token for h in report.hosts for v in h.vectors if took_message(v) and not v.delivered}


def _probe_info(config: SuiteConfig) -> ProbeInfo:
    return ProbeInfo(
        source_address=config.source_address,
        helo=config.probe_helo,
        canary_domain=config.canary_domain,
        vantage=config.vantage,
    )


def _untestable(target: str, config: SuiteConfig, reason: str) -> Report:
    report = Report(
        target=target,
        started_at=_now(),
        finished_at=_now(),
        catalogue_version=catalogue_version(),
        probe=_probe_info(config),
    )
    report.summary = verdict.summary(Verdict.INCONCLUSIVE, [f"Could not test: {reason}."])
    report.error = reason
    return report


class HostProbe:
    """All the connections to one host, one at a time."""

    def __init__(
        self,
        host: HostTarget,
        vectors,
        config: SuiteConfig,
        run_id: str,
        run_started: float,
        deadline: float,
        progress: Progress | None,
        share: pacing.LoopShare,
    ):
        self.host = host
        self.share = share
        self.run_started = run_started
        self.vectors: tuple[Vector, ...] = in_run_order(vectors)
        self.config = config
        self.run_id = run_id
        self.deadline = deadline
        self.progress = progress
        self.implicit_tls = host.port in config.implicit_tls_ports
        self.report = HostReport(
            address=host.address, port=host.port, name=host.name, implicit_tls=self.implicit_tls
        )
        self.host_tag = canary.host_tag(host.address, host.port)  # tokens prove this host only
        self.transcript = Transcript(offset=time.monotonic() - run_started)
        self.local_address: str | None = None
        self.extensions: dict[str, str] = {}
        self.target_host: str | None = host.name
        self.target_domain: str | None = config.local_domain or host.mail_domain
        self.needs_tls = False  # learnt from "530 Must issue a STARTTLS command first"
        # Errors a connection may take, learnt from the server: below where it slowed down, where it hung up.
        self.slowdown_budget: float = math.inf
        self.hangup_budget: float = math.inf
        self._vectors_left = 0  # after the one running, for weighing a slowdown against a reconnection
        self._session: SmtpSession | None = None  # the shared connection, reused with RSET
        self._session_vectors = 0
        self._sessions: list[SmtpSession] = []
        self.not_run: list[str] = []  # vectors the host's time budget left out
        self.started = time.monotonic()

    async def run(self) -> HostReport:
        dns_task = None
        try:
            async with (
                asyncio.timeout_at(self._loop_deadline()),
                pacing.host_slot(
                    self.share, self.host.address, self.host.port, self.config.max_hosts_in_flight
                ),
            ):
                await self._begin()
                await self._survey()
                dns_task = asyncio.ensure_future(self._dns_checks())
                await self._run_vectors()
        except SessionFailure as exc:
            self._unreachable(exc)
        except TimeoutError:
            self._out_of_time()
        finally:
            await self._drop_session()
        if dns_task:
            self.report.checks += await dns_task
        self._conclude()
        await _notify(self.progress, ProgressEvent("host_done", self.report))
        return self.report

    async def _begin(self) -> None:
        """The host's clock (its time budget, its transcript) starts when its turn under the cap comes."""
        self.started = time.monotonic()
        self.transcript.started, self.transcript.offset = self.started, self.started - self.run_started
        await _notify(self.progress, ProgressEvent("host_started", self.report))

    def _loop_deadline(self) -> float:
        loop = asyncio.get_running_loop()
        return loop.time() + max(0.0, self.deadline - time.monotonic())

    # ---- the survey connection: banner, EHLO, hygiene checks, TLS ----

    async def _survey(self) -> None:
        session = self._new_session()
        try:
            greeting = await session.open()
            hello = await session.hello(self.config.probe_helo)
            if not hello.is_positive:
                raise SessionFailure("helo_refused", f"the server refused our HELO: {hello.first_line}")
            self.report.banner = greeting.first_line
            self.extensions = dict(session.extensions)
            self.report.software = fingerprint.identify(greeting.text, hello.text)
            self._learn_names(greeting, hello)
            self.report.checks += await hygiene.survey_checks(session, self.report, self.target_host)
        except BaseException:
            await session.close()
            raise
        keep = session.slows_every_reply or self._connecting_is_slow()
        if keep and session.is_open and not session.started_tls:
            self._session, self._session_vectors = session, 0  # its greeting is not paid twice
        else:
            await session.close()

    def _learn_names(self, greeting: Reply, hello: Reply) -> None:
        """{target_host} and {target_domain}: the typed name first, else what the server announces."""
        announced = fingerprint.announced_name(greeting.text) or fingerprint.announced_name(hello.text)
        self.target_host = self.target_host or announced
        if not self.target_domain and self.target_host:
            self.target_domain = names.guessed_mail_domain(self.target_host)

    async def _dns_checks(self):
        return await hygiene.dns_host_checks(
            self.host.address, [self.target_host] if self.target_host else [], self.config
        )

    # ---- the vectors ----

    async def _run_vectors(self) -> None:
        not_applicable: list[tuple[str, str]] = []
        for index, vector in enumerate(self.vectors):
            self._vectors_left = len(self.vectors) - index - 1
            missing = self._missing_requirement(vector)
            if missing:
                not_applicable.append((vector.id, missing))
                continue
            if self.not_run or self._budget_spent():
                self.not_run.append(vector.id)
                continue
            result = await self._run_with_retries(vector)
            self.report.vectors.append(result)
            await _notify(self.progress, ProgressEvent("vector_done", self.report, result))
        if not_applicable:
            self.report.checks.append(hygiene.not_applicable(not_applicable))
        if self.not_run:
            self.report.checks.append(hygiene.not_run(self.not_run, self._budget_reason()))

    def _budget_spent(self) -> bool:
        """Against a server that delays every reply: would the next vector end past the host's budget?"""
        if not any(s.slows_every_reply for s in self._sessions):
            return False
        next_vector = REPLIES_PER_VECTOR * self._slowest_reply()
        return time.monotonic() - self.started + next_vector > self.config.host_budget

    def _slowest_reply(self) -> float:
        return max(s.slowest_reply for s in self._sessions)

    def _budget_reason(self) -> str:
        return (
            f"the server delays every reply (up to {self._slowest_reply():.1f} s) and the host's time "
            f"budget of {self.config.host_budget:g} s was spent"
        )

    def _missing_requirement(self, vector: Vector) -> str | None:
        facts = {
            "target_host": (self.target_host, "the server announces no host name"),
            "target_domain": (self.target_domain, "the server's mail domain is unknown"),
            "ipv4": (":" not in self.host.address, "IPv4 only"),
            "auth": ("AUTH" in self.extensions, "AUTH not offered"),
            "xclient": ("XCLIENT" in self.extensions, "XCLIENT not offered"),
            "starttls": ("STARTTLS" in self.extensions, "STARTTLS not offered"),
            "data": (self.config.send_data, "canary delivery is off"),
            "not-loopback": (
                ip_literal(self.host.address) != LOOPBACK_LITERAL,
                f"its own literal is {LOOPBACK_LITERAL}",
            ),
        }
        for need in vector.requires:
            # A requirement in capitals is an EHLO keyword (DSN, SMTPUTF8, CHUNKING ...).
            present, why = facts.get(need) or (
                need in self.extensions,
                f"{need} not offered",
            )
            if not present:
                return why
        return None

    def _placeholders(self, vector: Vector) -> Placeholders:
        secret, domain, run_id, tag = (
            self.config.canary_secret,
            self.config.canary_domain,
            self.run_id,
            self.host_tag,
        )
        return Placeholders(
            canary_sender=f"{canary.make_token(secret, canary.SENDER, run_id, tag, vector.id)}@{domain}",
            canary_user=canary.make_token(secret, canary.RECIPIENT, run_id, tag, vector.id),
            canary_domain=domain,
            target_domain=self.target_domain or "",
            target_host=self.target_host or "",
            target_ip=self.host.address,
            target_ip_literal=ip_literal(self.host.address),
            probe_helo=self.config.probe_helo,
            local_user=self.config.local_user,
        )

    async def _run_with_retries(self, vector: Vector) -> VectorResult:
        """One vector; a broken connection or a 421 earns one retry on a fresh connection."""
        attempts = 0
        while True:
            attempts += 1
            result = await self._attempt(vector)
            result.attempts = attempts
            if result.reason == "tls_required" and not self.needs_tls and "STARTTLS" in self.extensions:
                self.needs_tls = True  # redo it, and everything after it, over TLS
                await self._drop_session()
                continue
            if result.reason == "greylisted" and self.config.greylist_retry_after > 0 and attempts == 1:
                await asyncio.sleep(self.config.greylist_retry_after)
                continue
            if result.outcome == "failed" or result.reason == "rate_limited":
                await self._drop_session()
                if attempts == 1:
                    continue
            return result

    async def _attempt(self, vector: Vector) -> VectorResult:
        words = self._placeholders(vector)
        helo = words.fill(vector.helo or "{probe_helo}")
        result = VectorResult(
            id=vector.id,
            helo=helo,
            mail_from=words.fill(vector.mail_from),
            rcpt_to=words.fill(vector.rcpt_to),
            outcome="failed",
            reason="",
            evidence=vector.evidence,
            tier=vector.tier,
            token=words.canary_user,
        )
        try:
            if vector.session or (vector.helo and not self._connecting_is_slow()):
                await self._run_in_own_session(vector, helo, result)
            else:
                session = await self._shared_session(helo)
                await self._envelope(session, result, vector)
                await self._maybe_retire(session)
        except SessionFailure as exc:
            self._learn_from_drop(exc)
            await self._drop_session()
            result.outcome, result.reason, result.reply = "failed", exc.reason, exc.detail
            result.code = exc.reply.code if exc.reply else None
        return result

    async def _run_in_own_session(self, vector: Vector, helo: str, result: VectorResult) -> None:
        """Session variants (TLS, AUTH, XCLIENT; their own HELO while connecting is fast) get a connection each."""
        await self._drop_session()  # one connection per host at a time
        session = await self._open_ready(helo, tls=self.needs_tls or vector.session == "tls")
        try:
            await hygiene.session_setup(session, vector.session)
            await self._envelope(session, result, vector)
        finally:
            await session.close()

    async def _envelope(self, session: SmtpSession, result: VectorResult, vector: Vector) -> None:
        """MAIL FROM, any recipients the vector sends first, then RCPT TO; the reply that decides is kept.

        The first recipients' replies only go into the transcript: the vector's own RCPT decides.
        """
        result.tls = session.tls
        reply = await session.command("MAIL", f"FROM:{result.mail_from}")
        self._keep(result, "mail", reply)
        if not reply.is_positive:
            return
        others_taken = False
        for before in self._first_recipients(vector):
            reply = await session.command("RCPT", f"TO:{before}")
            others_taken = others_taken or reply.is_positive
        reply = await session.command("RCPT", f"TO:{result.rcpt_to}")
        self._keep(result, "rcpt", reply)
        # A test message goes to the canary only: never when another recipient is in the transaction.
        if reply.is_positive and self.config.send_data and result.evidence != "control" and not others_taken:
            await self._send_test_message(session, result, vector.data)

    def _first_recipients(self, vector: Vector) -> list[str]:
        """The recipients the vector gives before its own, filled in: its placeholders made once, not per recipient."""
        if not vector.rcpt_before:
            return []
        words = self._placeholders(vector)
        return [words.fill(recipient) for recipient in vector.rcpt_before]

    @staticmethod
    def _keep(result: VectorResult, step: str, reply: Reply) -> None:
        result.step, result.code, result.reply = step, reply.code, reply.first_line
        result.outcome, result.reason = verdict.classify(reply.code, reply.text, step)

    async def _send_test_message(self, session: SmtpSession, result: VectorResult, how: str = "DATA") -> None:
        """Only ever to the vector's canary address: the probe never mails a third party."""
        address = f"{result.token}@{self.config.canary_domain}"
        test_message = message.test_message(
            address,
            self.run_id,
            result.id,
            self.config.portal_name,
            self.config.portal_url,
            self.config.contact,
        )
        reply = await (session.bdat(test_message) if how == "BDAT" else session.data(test_message))
        result.data_code, result.data_reply = reply.code, reply.first_line
        result.sent_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        result.delivered = False  # until the canary receiver says otherwise

    async def _maybe_retire(self, session: SmtpSession) -> None:
        """End a shared connection before the server's error limits or a tarpit bite."""
        self._session_vectors += 1
        if (
            not self._goes_on_at_its_pace(session, vectors=self._vectors_left)
            or self._session_vectors >= self._vectors_per_connection()
            or session.errors >= self._errors_per_connection()
        ):
            await self._drop_session()

    def _vectors_per_connection(self) -> int | float:
        """Few vectors per connection spread the errors thin; a slow greeting makes that too dear.

        Then only the server's error budget (learnt from its slowdowns and hang-ups) ends a connection.
        """
        return math.inf if self._connecting_is_slow() else self.config.max_vectors_per_connection

    def _errors_per_connection(self) -> int | float:
        if self._connecting_is_slow():
            configured = self.config.max_errors_when_connecting_is_slow
        else:
            configured = self.config.max_errors_per_connection
        return min(configured, self.slowdown_budget, self.hangup_budget)

    def _goes_on_at_its_pace(self, session: SmtpSession, vectors: int) -> bool:
        """May the connection go on to `vectors` more, slowed down or not? When not, the error budget
        learns why."""
        if self._slowdown_is_cheaper(session, vectors):
            return True
        self._learn_from_slowdown(session)
        return not _tarpit_began(session)

    def _slowdown_is_cheaper(self, session: SmtpSession, vectors: int) -> bool:
        """Would the vectors this connection can still carry cost less at its slowed pace than a new
        connection's greeting?

        Postfix answers every reply 1 s late after 10 errors: with an 8 s greeting, the last two vectors
        (6 s) are cheaper where they are; earlier, a new connection's fast replies win.
        """
        carried = min(vectors, self._errors_per_connection() - session.errors)
        slowed = carried * REPLIES_PER_VECTOR * session.last_reply_seconds
        return _tarpit_began(session) and slowed < self._connection_cost()

    def _connection_cost(self) -> float:
        return max(s.connect_seconds for s in self._sessions)

    def _connecting_is_slow(self) -> bool:
        """Did greeting and EHLO on the slowest connection so far take as long as a slow reply?"""
        return self._connection_cost() >= self.config.slow_reply_seconds

    def _learn_from_slowdown(self, session: SmtpSession) -> None:
        """A server that began to tarpit after N errors will do it again: from now on, stay below N.

        Below, not at: a tarpit delays every reply after the Nth error, QUIT's included.
        """
        began_after = session.errors_before_slowdown
        if began_after is not None and _tarpit_began(session):
            self.slowdown_budget = max(1, min(self.slowdown_budget, began_after - 1))

    def _learn_from_drop(self, failure: SessionFailure) -> None:
        """A server that hung up after N errors will do it again: stay below N from now on."""
        if failure.reason == "dropped" and self._session and self._session.errors:
            self.hangup_budget = max(1, min(self.hangup_budget, self._session.errors - 1))

    async def _shared_session(self, helo: str) -> SmtpSession:
        """The connection the vectors share, reset with RSET, or with a new EHLO for a vector's own HELO.

        A HELO variant gets a connection of its own unless connecting is slow: EHLO again resets the
        session as RSET does (RFC 5321, 4.1.4), and costs one round trip instead of a greeting.
        """
        if self._session is not None and self._session.is_open:
            same_helo = self._session.helo_name == helo
            if not self._session_vectors and same_helo:
                return self._session  # the survey's connection, handed over untouched
            reply = await (self._session.command("RSET") if same_helo else self._session.hello(helo))
            if self._goes_on_at_its_pace(self._session, vectors=self._vectors_left + 1) and reply.is_positive:
                return self._session
            await self._drop_session()  # a refused or tarpitted reset: the next vector gets a fresh start
        self._session = await self._open_ready(helo)
        self._session_vectors = 0
        return self._session

    async def _open_ready(self, helo: str, tls: bool | None = None) -> SmtpSession:
        """Connect, greet, and start TLS when the server requires it."""
        session = self._new_session()
        await session.open()
        reply = await session.hello(helo)
        if (self.needs_tls if tls is None else tls) and reply.is_positive and not session.tls:
            await session.starttls()
            reply = await session.hello(helo)
        if not reply.is_positive:
            await session.close()
            raise SessionFailure("helo_refused", f"the server refused {helo!r}: {reply.first_line}")
        return session

    def _new_session(self) -> SmtpSession:
        self.report.connections += 1
        session = SmtpSession(
            self.host.address,
            self.host.port,
            self.transcript,
            command_timeout=self.config.command_timeout,
            connect_timeout=self.config.connect_timeout,
            source_address=self.config.source_address,
            slow_reply_seconds=self.config.slow_reply_seconds,
            implicit_tls=self.implicit_tls,
        )
        self._sessions.append(session)
        return session

    async def _drop_session(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # ---- conclusions ----

    def _unreachable(self, failure: SessionFailure) -> None:
        self.report.reason = f"could not test: {failure.detail}"
        self.report.banner = self.report.banner or failure.banner

    def _out_of_time(self) -> None:
        tested = {result.id for result in self.report.vectors}
        missing = [v.id for v in self.vectors if v.id not in tested]
        self.report.reason = f"the run's time limit was reached with {len(missing)} vector(s) untested"

    def _conclude(self) -> None:
        self.local_address = next((s.local_address for s in self._sessions if s.local_address), None)
        self.report.round_trips = sum(s.round_trips for s in self._sessions)
        self.report.transcript = self.transcript.finish()
        self.report.duration_s = round(time.monotonic() - self.started, 3)
        self.report.checks += verdict.relay_warnings(self.report.vectors)
        if self.report.reason and not self.report.vectors:
            self.report.verdict = Verdict.INCONCLUSIVE
            return
        refusals = {v.id: v.refusals for v in self.vectors}
        self.report.verdict, reason = verdict.host_verdict(self.report.vectors, refusals)
        untested_core = [v.id for v in self.vectors if v.tier == "core" and v.id in self.not_run]
        if self.report.verdict == Verdict.SECURE and (self.report.reason or untested_core):
            self.report.verdict = (
                Verdict.INCONCLUSIVE
            )  # what was refused is not everything: vectors are missing
            if untested_core:
                reason = f"the core vectors tested were refused, but {len(untested_core)} were not tested"
        if self.not_run:
            reason += f"; {len(self.not_run)} vector(s) not run: {self._budget_reason()}"
        self.report.reason = f"{self.report.reason}; {reason}" if self.report.reason else reason


def _tarpit_began(session: SmtpSession) -> bool:
    """The server slowed down after some errors (it counts them): a new connection starts afresh.

    A server that delays every reply from the first command on gains nothing from reconnecting.
    """
    return session.slowed_down and not session.slows_every_reply
