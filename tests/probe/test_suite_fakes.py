"""The engine against fake servers: verdicts, outcomes and reasons as docs/architecture.md (Verdicts) says.

No DATA is sent in this issue and no canary receiver runs, so ``delivered`` is null everywhere and
accepted outside recipients make ``accepts_relay`` at most.
"""

from __future__ import annotations

import tracemalloc

import pytest

from relaytests.probe import canary
from relaytests.probe.report import HostReport, VectorResult
from relaytests.probe.suite import run_suite
from relaytests.probe.targets import HostTarget
from relaytests.probe.vectors import catalogue
from tests.fakes import BANNERS, BEHAVIOURS, with_banner
from tests.probe.conftest import suite_config

HOST = "mx.dept.example.edu"
POSTFIX_GREETING = "220 mx.dept.example.edu ESMTP Postfix (Debian/GNU)"
RUN_ID, SECRET = "fakesrun01", "test"  # as tests/probe/conftest.py configures the suite
MEMORY_BOUND = 32 * 1024 * 1024  # bytes: generous; an unbounded reader would pass it within a second

# The vectors each one-trick server lets through (docs/vectors.md, with target_host
# mx.dept.example.edu, target_domain dept.example.edu and the literal [127.0.0.1]).
# A one-trick server takes the trick whatever the sender, so the sender variants of these vectors too.
ACCEPTED_BY_TRICK = {
    "percent": {"percent-host", "percent-domain", "percent-iplit"},
    "srcroute": {"srcroute-host", "srcroute-iplit"},
    "bang": {"bang", "bang-host", "bang-iplit"},
    "quoted": {"quoted", "quoted-percent", "quoted-at-host", "quoted-at-iplit"},
    "iplit": {"percent-iplit", "double-at-iplit", "quoted-at-iplit", "bang-iplit", "rcpt-iplit"},
}
# The vectors addressed to a mailbox of the server itself: a closed server has no such user.
MAILBOX_VECTORS = {"rcpt-iplit"}


def with_sender_variants(ids: set[str]) -> set[str]:
    return ids | {v.id for v in catalogue() if v.base in ids}


def only_host(report) -> HostReport:
    assert len(report.hosts) == 1
    return report.hosts[0]


def relay_vectors(host: HostReport) -> list[VectorResult]:
    """The relay attempts but the one at a mailbox of the server (a closed one knows no such user)."""
    return [v for v in host.vectors if v.evidence != "control" and v.id not in MAILBOX_VECTORS]


def outcomes(vectors: list[VectorResult]) -> set[tuple[str, str]]:
    return {(v.outcome, v.reason) for v in vectors}


def check(host: HostReport, check_id: str):
    found = [c for c in host.checks if c.id == check_id]
    assert len(found) == 1, f"expected one {check_id} check in {[c.id for c in host.checks]}"
    return found[0]


def token(port: int, vector_id: str, kind: str = canary.RECIPIENT) -> str:
    """The token the probe sends a fake server on 127.0.0.1:port for the vector."""
    return canary.make_token(SECRET, kind, RUN_ID, canary.host_tag("127.0.0.1", port), vector_id)


async def test_closed_server_is_secure(fake_smtp, probe):
    server = fake_smtp("closed")
    report = await probe(server)
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("secure", "secure")
    assert host.banner == POSTFIX_GREETING
    assert host.software.family.lower() == "postfix"
    assert outcomes(relay_vectors(host)) == {("rejected", "relay_denied")}
    assert {v.code for v in relay_vectors(host)} == {554}
    controls = [(v.id, v.outcome) for v in host.vectors if v.evidence == "control"]
    assert controls == [("control-inbound", "accepted")]
    assert {v.delivered for v in host.vectors} == {None}
    assert {v.id for v in host.vectors} >= {"plain", "null-sender", "spoof-domain", "percent-host", "bang"}


async def test_postfix_default_454_is_a_refusal_with_a_warning(fake_smtp, probe):
    report = await probe(fake_smtp("postfix-default"))
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("secure", "secure")
    assert outcomes(relay_vectors(host)) == {("deferred", "relay_denied")}
    warning = check(host, "relay-refused-temporarily")
    assert warning.status == "warn"
    assert set(warning.data["vectors"]) == {v.id for v in relay_vectors(host)}


async def test_open_relay_accepts_relay_without_proof(fake_smtp, probe):
    report = await probe(fake_smtp("open"))
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("accepts_relay", "accepts_relay")
    assert outcomes(host.vectors) == {("accepted", "accepted")}
    assert {v.delivered for v in host.vectors} == {None}
    assert "plain" in host.reason
    assert "canary" in host.reason  # says why it is not proven: canary delivery is off


@pytest.mark.parametrize("trick", sorted(ACCEPTED_BY_TRICK))
async def test_one_trick_server_is_caught_by_exactly_its_vectors(fake_smtp, probe, trick):
    report = await probe(fake_smtp(f"open-{trick}"))
    host = only_host(report)
    accepted = {v.id for v in host.vectors if v.outcome == "accepted" and v.evidence != "control"}
    assert accepted == with_sender_variants(ACCEPTED_BY_TRICK[trick])
    others = [v for v in relay_vectors(host) if v.id not in accepted]
    assert outcomes(others) == {("rejected", "relay_denied")}
    # Target-final vectors accepted alone are suspicion, not accepts_relay (§5.2, §5.3); and a core
    # vector that was not refused keeps the host from being secure.
    assert (report.verdict, host.verdict) == ("inconclusive", "inconclusive")
    assert all(v.id in host.reason for v in host.vectors if v.id in accepted and v.tier == "core")
    warning = check(host, "routed-addresses-accepted")
    assert warning.status == "warn"
    assert set(warning.data["vectors"]) == accepted


async def test_catch_all_sink_accepts_relay(fake_smtp, probe):
    report = await probe(fake_smtp("catch-all"))
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("accepts_relay", "accepts_relay")
    assert outcomes(host.vectors) == {("accepted", "accepted")}


async def test_greylisting_is_inconclusive(fake_smtp, probe):
    report = await probe(fake_smtp("greylisting"))
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("inconclusive", "inconclusive")
    assert "greylisted" in host.reason
    assert outcomes(host.vectors) == {("deferred", "greylisted")}
    assert check(host, "greylisted-outside-recipient").status == "warn"


async def test_greylisting_is_waited_out_with_the_same_triplet(fake_smtp, probe):
    server = fake_smtp("greylisting", greylist="first-time")
    one_recipient = [v.id for v in catalogue() if not v.rcpt_before]  # so that RCPTs pair up
    report = await probe(server, greylist_retry_after=0.01, vector_ids=one_recipient)
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("secure", "secure")
    assert outcomes(relay_vectors(host)) == {("rejected", "relay_denied")}
    assert {v.attempts for v in host.vectors} == {2}
    rcpts, senders = server.seen.rcpt_arguments, server.seen.mail_arguments
    assert rcpts[0::2] == rcpts[1::2] and senders[0::2] == senders[1::2]  # each retry repeats its pair


async def test_blocked_probe_is_inconclusive(fake_smtp, probe):
    report = await probe(fake_smtp("client-blocked"))
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("inconclusive", "inconclusive")
    assert "client_blocked" in host.reason
    assert outcomes(host.vectors) == {("rejected", "client_blocked")}


@pytest.mark.parametrize(
    ("behaviour", "greeting"),
    [
        ("421-at-connect", "421 4.3.2 Service not available, closing transmission channel"),
        ("554-at-connect", "554 5.3.2 mx.dept.example.edu No SMTP service here"),
    ],
)
async def test_refusal_at_connect_is_inconclusive_with_the_greeting(fake_smtp, probe, behaviour, greeting):
    report = await probe(fake_smtp(behaviour))
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("inconclusive", "inconclusive")
    assert greeting in host.reason
    assert host.vectors == []


async def test_error_limit_that_drops_the_client_is_never_reached(fake_smtp, probe):
    server = fake_smtp("drop-after-errors", drop_after_errors=10)
    report = await probe(server)
    host = only_host(report)
    assert host.verdict == "secure"
    assert outcomes(relay_vectors(host)) == {("rejected", "relay_denied")}
    assert server.seen.most_errors_on_one_connection < 10
    assert not any(conn.dropped for conn in server.seen.connections)


async def test_a_server_that_drops_early_still_gets_every_vector(fake_smtp, probe):
    server = fake_smtp("drop-after-errors", drop_after_errors=3)
    report = await probe(server)
    host = only_host(report)
    assert host.verdict == "secure"
    assert outcomes(relay_vectors(host)) == {("rejected", "relay_denied")}


async def test_tarpit_is_never_paid(fake_smtp, probe):
    server = fake_smtp("tarpit-after-errors", tarpit_after_errors=10, tarpit_seconds=30)
    report = await probe(server)
    host = only_host(report)
    assert host.verdict == "secure"
    assert outcomes(relay_vectors(host)) == {("rejected", "relay_denied")}
    assert server.seen.tarpit_sleeps == 0
    assert server.seen.most_errors_on_one_connection < 10


async def test_a_tarpit_that_begins_early_is_paid_once_then_avoided(fake_smtp, probe):
    # A stricter server than any default: it slows every reply after 3 errors. The probe notices the
    # first slow reply, reconnects, and from then on leaves every connection before the third error.
    server = fake_smtp("tarpit-after-errors", tarpit_after_errors=3, tarpit_seconds=1.2)
    report = await probe(server, command_timeout=5)
    host = only_host(report)
    assert host.verdict == "secure"
    assert outcomes(relay_vectors(host)) == {("rejected", "relay_denied")}
    assert server.seen.tarpit_sleeps == 1


async def test_greeting_slower_than_the_timeout_is_inconclusive(fake_smtp, probe):
    server = fake_smtp("slow-banner", banner_delay=3600)
    report = await probe(server, command_timeout=0.5, connect_timeout=0.5)
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("inconclusive", "inconclusive")
    assert "time" in host.reason
    assert host.vectors == []


async def test_greeting_slower_than_usual_but_within_the_timeout(fake_smtp, probe):
    report = await probe(fake_smtp("slow-banner", banner_delay=0.2))
    host = only_host(report)
    assert host.verdict == "secure"
    assert host.banner == POSTFIX_GREETING


async def test_a_run_cut_short_by_its_deadline_is_inconclusive(fake_smtp, probe):
    """DESIGN: secure means every core vector was refused; untested core vectors were not."""
    server = fake_smtp("slow-banner", banner_delay=0.5)
    report = await probe(server, run_deadline=2.0)
    host = only_host(report)
    assert len(server.seen.connections) < 11  # the deadline did cut the run short
    assert (report.verdict, host.verdict) == ("inconclusive", "inconclusive")
    assert "time limit" in host.reason


@pytest.mark.parametrize(
    "behaviour", ["endless-greeting", "endless-ehlo", "overlong-greeting", "overlong-ehlo", "garbage"]
)
async def test_hostile_replies_are_inconclusive_in_bounded_memory(fake_smtp, probe, behaviour):
    server = fake_smtp(behaviour)
    tracemalloc.start()
    try:
        report = await probe(server, run_deadline=60.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("inconclusive", "inconclusive")
    assert host.reason.startswith("could not test")
    assert "time limit" not in host.reason  # recognised as garbage, not waited out
    assert peak < MEMORY_BOUND


async def test_starttls_required_runs_every_vector_over_tls(fake_smtp, probe):
    server = fake_smtp("starttls-required")
    report = await probe(server)
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("secure", "secure")
    assert all(v.tls for v in host.vectors)
    assert outcomes(relay_vectors(host)) == {("rejected", "relay_denied")}
    tls_check = check(host, "starttls")
    assert tls_check.status == "pass"
    assert "trustme" in tls_check.data["issuer"]


async def test_server_open_only_over_tls_is_found(fake_smtp, probe):
    report = await probe(fake_smtp("starttls-required", relays=frozenset({"any"})))
    host = only_host(report)
    assert host.verdict == "accepts_relay"
    assert {(v.tls, v.outcome) for v in host.vectors} == {(True, "accepted")}


async def test_helo_only_server_is_tested_with_helo(fake_smtp, probe):
    server = fake_smtp("helo-only")
    report = await probe(server)
    host = only_host(report)
    assert host.verdict == "secure"
    assert outcomes(relay_vectors(host)) == {("rejected", "relay_denied")}
    assert b"HELO probe.example.net" in server.seen.commands


async def test_pipelining_intolerant_server_never_sees_a_synchronisation_error(fake_smtp, probe):
    server = fake_smtp("pipelining-intolerant")
    report = await probe(server)
    assert only_host(report).verdict == "secure"
    assert server.seen.sync_errors == 0


async def test_address_tricks_go_on_the_wire_byte_for_byte(fake_smtp, probe):
    server = fake_smtp("closed")
    ids = ["quoted", "srcroute-host", "srcroute-iplit", "bang", "unbracketed"]
    report = await probe(server, vector_ids=ids)
    expected = [
        f'<"{token(server.port, "quoted")}@canary.example.net">',
        f"<@{HOST}:{token(server.port, 'srcroute-host')}@canary.example.net>",
        f"<@[127.0.0.1]:{token(server.port, 'srcroute-iplit')}@canary.example.net>",
        f"<canary.example.net!{token(server.port, 'bang')}>",
        f"{token(server.port, 'unbracketed')}@canary.example.net",
    ]
    assert server.seen.rcpt_arguments == [text.encode() for text in expected]
    senders = [f"<{token(server.port, vector_id, canary.SENDER)}@canary.example.net>" for vector_id in ids]
    assert server.seen.mail_arguments == [sender.encode() for sender in senders]
    assert [v.rcpt_to for v in only_host(report).vectors] == expected


@pytest.mark.parametrize(
    ("behaviour", "changes"),
    [("closed", {}), ("starttls-required", {}), ("drop-after-errors", {"drop_after_errors": 3})],
)
async def test_one_connection_at_a_time_per_host(fake_smtp, probe, behaviour, changes):
    server = fake_smtp(behaviour, **changes)
    report = await probe(server)
    assert len(server.seen.connections) > 1
    assert only_host(report).connections == len(server.seen.connections)
    assert server.seen.max_concurrent == 1


async def test_run_verdict_is_the_worst_host_and_hosts_run_side_by_side(fake_smtp, probe):
    closed, open_relay = fake_smtp("closed"), fake_smtp("open")
    report = await probe(closed, open_relay)
    assert [h.verdict for h in report.hosts] == ["secure", "accepts_relay"]
    assert report.verdict == "accepts_relay"
    assert closed.seen.max_concurrent == open_relay.seen.max_concurrent == 1


@pytest.mark.parametrize(
    ("mta", "family", "version"),
    [
        ("postfix", "postfix", None),
        ("sendmail", "sendmail", "8.8.8"),
        ("exim", "exim", "4.96"),
        ("microsoft", "exchange", None),
        ("opensmtpd", "opensmtpd", None),
    ],
)
async def test_software_is_read_from_the_greeting(fake_smtp, probe, mta, family, version):
    report = await probe(fake_smtp(with_banner(BEHAVIOURS["closed"], mta)), vector_ids=["plain"])
    host = only_host(report)
    assert (host.software.family, host.software.version) == (family, version)
    assert host.banner == f"220 {HOST} {BANNERS[mta]}"


async def test_a_port_that_cannot_exist_is_inconclusive_with_a_reason():
    report = await run_suite("127.0.0.1", [HostTarget("127.0.0.1", 70000)], suite_config())
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("inconclusive", "inconclusive")
    assert host.reason == "could not test: port 70000 does not exist (1-65535)"


@pytest.mark.parametrize("vantage, warned", [("outside", True), ("inside", False)])
async def test_only_a_probe_reporting_the_outside_view_from_inside_is_warned(
    probe, fake_smtp, vantage, warned
):
    report = await probe(fake_smtp("closed"), internal_networks=("127.0.0.0/8",), vantage=vantage)

    assert report.probe.inside_internal_networks
    assert any(check.id == "vantage" for check in report.checks) is warned
