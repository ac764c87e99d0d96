"""Verdicts that survive a dispute: servers that answer outside the grammar, in unusual words, with
hostile text, with broken certificates, or slowly.

Each engine test runs the suite against a fake of tests/fakes/smtp.py; the CLI tests run
``manage.py relaytest`` as a subprocess, as an operator's terminal or a monitoring system would.
"""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from relaytests.probe import dnschecks
from relaytests.probe.receiver import received_chain
from relaytests.probe.vectors import catalogue
from tests.dnsserver import ZoneServer
from tests.fakes.smtp import HOSTILE_TEXT
from tests.probe.test_cli import FORWARD_CONFIRMED_PTR, PROJECT, relaytest_json
from tests.probe.test_suite_fakes import check, only_host, outcomes, relay_vectors
from tests.relaytest_command import command_line, environment

# What may never reach a report, a page or a terminal: C0 and C1 controls (tab aside), DEL,
# and lone surrogates (invalid UTF-8 decoded with surrogateescape).
FORBIDDEN = {chr(c) for c in range(0x20) if c != 0x09} | {chr(c) for c in range(0x7F, 0xA0)}


def hostile_characters(value) -> set[str]:
    """Every forbidden character in every string of a report (keys and values, at any depth)."""
    if isinstance(value, str):
        return {ch for ch in value if ch in FORBIDDEN or 0xD800 <= ord(ch) <= 0xDFFF}
    if isinstance(value, dict):
        return set().union(*map(hostile_characters, value.keys()), *map(hostile_characters, value.values()))
    if isinstance(value, list | tuple):
        return set().union(set(), *map(hostile_characters, value))
    return set()


def relaytest_bytes(port: int, *args: str) -> subprocess.CompletedProcess:
    """The command's exact bytes on a pipe whose encoding is strict ASCII."""
    return subprocess.run(
        command_line(
            "127.0.0.1",
            "--port",
            str(port),
            "--canary-domain",
            "canary.example.net",
            "--local-domain",
            "dept.example.edu",
            "--helo",
            "probe.example.net",
            "--timeout",
            "10",
            *args,
        ),
        cwd=PROJECT,
        capture_output=True,
        timeout=300,
        check=False,
        env=environment(PYTHONIOENCODING="ascii:strict"),
    )


# ---- replies outside the grammar ----


@pytest.mark.parametrize("behaviour", ["reply-2500", "reply-999", "reply-abc", "reply-mixed"])
async def test_a_reply_outside_the_grammar_is_garbage_and_never_acceptance(fake_smtp, probe, behaviour):
    report = await probe(fake_smtp(behaviour))
    host = only_host(report)
    assert "accepted" not in {v.outcome for v in host.vectors}
    assert ("failed", "garbage") in outcomes(host.vectors)
    assert (report.verdict, host.verdict) == ("inconclusive", "inconclusive")
    assert "garbage" in host.reason


def test_a_2500_reply_does_not_exit_as_a_relay(fake_smtp):
    report, code = relaytest_json(fake_smtp("reply-2500").port)
    assert report["verdict"] == "inconclusive"
    assert code == 3


# ---- a permanent refusal in unfamiliar words ----


async def test_exims_administrative_prohibition_refuses_the_routing_tricks(fake_smtp, probe):
    report = await probe(fake_smtp("exim"))
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("secure", "secure")
    tricks = [v for v in relay_vectors(host) if v.evidence == "target-final"]
    assert tricks and outcomes(tricks) <= {("rejected", "refused_other"), ("rejected", "relay_denied")}
    assert ("rejected", "refused_other") in outcomes(tricks)
    assert {v.reply for v in tricks if v.reason == "refused_other"} == {"550 Administrative prohibition"}


def test_a_closed_exim_exits_0(fake_smtp):
    server = fake_smtp("exim", starttls=True)
    with ZoneServer(FORWARD_CONFIRMED_PTR) as dns:
        report, code = relaytest_json(server.port, "--resolver", dns.address)
    assert report["verdict"] == "secure"
    assert code == 0


# ---- hostile text ----


async def test_hostile_text_in_greeting_ehlo_and_starttls_refusal_is_made_safe(fake_smtp, probe):
    report = await probe(fake_smtp("hostile-text"))
    host = only_host(report)
    assert hostile_characters(report.to_dict()) == set()
    assert host.banner.startswith("220 mx.dept.example.edu ESMTP evil")
    starttls = check(host, "starttls")
    assert starttls.status == "fail"
    assert "TLS not available: evil" in starttls.detail
    assert host.verdict == "secure"  # the text is the server's business; the relay test goes on


async def test_hostile_names_in_the_certificate_are_made_safe(fake_smtp, probe):
    report = await probe(fake_smtp("hostile-certificate"))
    starttls = check(only_host(report), "starttls")
    assert hostile_characters(report.to_dict()) == set()
    assert "owned" in starttls.data["subject"] and "owned" in starttls.data["names"][0]


async def test_a_certificate_cryptography_cannot_parse_is_an_error_check_and_the_run_goes_on(
    fake_smtp, probe
):
    report = await probe(fake_smtp("malformed-certificate"))
    host = only_host(report)
    starttls = check(host, "starttls")
    assert starttls.status == "error"
    assert "could not be read" in starttls.detail
    assert host.verdict == "secure"


def test_received_headers_of_a_canary_message_are_made_safe():
    message = b"Received: from evil\x00\x1b]0;owned\x07 by x \xff\xfe\r\nSubject: t\r\n\r\nbody\r\n"
    (chain,) = received_chain(message)
    assert hostile_characters(chain) == set()
    assert chain.startswith("from evil") and chain.endswith("by x \ufffd\ufffd")


@pytest.mark.parametrize("behaviour", ["hostile-text", "hostile-certificate", "malformed-certificate"])
def test_the_cli_is_safe_on_a_strict_ascii_pipe(fake_smtp, behaviour):
    result = relaytest_bytes(fake_smtp(behaviour).port)
    assert b"Traceback" not in result.stderr, result.stderr.decode("ascii", "replace")
    assert result.returncode in (0, 1), result.stderr
    for stream in (result.stdout, result.stderr):
        stream.decode("ascii")  # nothing but ASCII reached the pipe ...
        assert hostile_characters(stream.decode("ascii")) - {"\n"} == set()  # ... and no escapes
    assert b"SECURE" in result.stdout


@pytest.mark.parametrize("behaviour", ["hostile-text", "hostile-certificate"])
def test_the_json_report_stays_valid_and_clean(fake_smtp, behaviour):
    result = relaytest_bytes(fake_smtp(behaviour).port, "--json")
    report = json.loads(result.stdout)
    assert report["verdict"] == "secure"
    assert hostile_characters(report) == set()


def test_the_fake_really_sends_the_hostile_bytes():
    assert b"\x00" in HOSTILE_TEXT and b"\x1b" in HOSTILE_TEXT and b"\xff" in HOSTILE_TEXT


# ---- DNS data ----

LONG_SPF = "v=spf1 " + "ip4:192.0.2.1 " * 400 + "-all"  # 5,600 characters in 255-byte strings
HOSTILE_ZONE = (
    "1.0.0.127.in-addr.arpa. PTR evil\\027]0owned\\007\\000.example.\n"
    'dept.example.edu. TXT "v=spf1 \\000\\027[2J\\255 -all"\n'
    "other.example.edu. TXT "
    + " ".join(f'"{LONG_SPF[i : i + 255]}"' for i in range(0, len(LONG_SPF), 255))
    + "\n"
    "dept.example.edu. MX 10 mx.dept.example.edu.\n"
)


async def test_ptr_and_txt_data_are_made_safe_and_bounded():
    with ZoneServer(HOSTILE_ZONE) as dns:
        (ptr,) = await dnschecks.host_checks(
            "127.0.0.1", ["mx.dept.example.edu"], resolver=dns.address, dnsbl_zones=()
        )
        checks = await dnschecks.domain_checks("dept.example.edu", resolver=dns.address)
        long_spf = await dnschecks.domain_checks("other.example.edu", resolver=dns.address)
    spf = next(c for c in checks if c.id == "spf")
    assert hostile_characters([ptr.detail, ptr.data, spf.detail, spf.data]) == set()
    assert "owned" in ptr.data["ptr"][0] and "[2J" in spf.data["records"][0]
    (record,) = next(c for c in long_spf if c.id == "spf").data["records"]
    assert record.startswith("v=spf1 ip4:192.0.2.1") and len(record) <= 4096


# ---- tarpits ----

TARPIT_DELAY = 0.2  # seconds before every reply: 4 s in the field, scaled down with the budget
TARPIT_BUDGET = 80 * TARPIT_DELAY  # room for the core vectors (about 60 replies), not for the rest


@pytest.mark.slow
async def test_a_tarpit_gets_the_core_vectors_within_the_host_budget_and_the_rest_is_listed(fake_smtp, probe):
    server = fake_smtp("tarpit", tarpit_seconds=TARPIT_DELAY)
    report = await probe(server, host_budget=TARPIT_BUDGET, slow_reply_seconds=TARPIT_DELAY / 2)
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("secure", "secure")
    assert host.duration_s <= TARPIT_BUDGET
    ran = {v.id for v in host.vectors}
    assert {v.id for v in catalogue() if v.tier == "core"} <= ran
    not_run = check(host, "vectors-not-run")
    assert not_run.data["vectors"] and not ran & set(not_run.data["vectors"])
    assert "delays every reply" in not_run.detail and "not run" in host.reason
    assert check(host, "expn").data == {"not_run": "tarpit"}
    assert check(host, "starttls").status == "warn"  # not offered: known from EHLO, no command needed


async def test_a_tarpit_too_slow_for_the_core_is_inconclusive_within_the_budget(fake_smtp, probe):
    server = fake_smtp("tarpit", tarpit_seconds=TARPIT_DELAY)
    report = await probe(server, host_budget=30 * TARPIT_DELAY, slow_reply_seconds=TARPIT_DELAY / 2)
    host = only_host(report)
    assert (report.verdict, host.verdict) == ("inconclusive", "inconclusive")
    assert host.duration_s <= 30 * TARPIT_DELAY
    assert "were not tested" in host.reason
    assert {v.outcome for v in host.vectors} == {"rejected"}


# The stalled command counts as slow only after a minute: an end that comes sooner meets a fast session.
PATIENT = {"command_timeout": 60.0, "slow_reply_seconds": 60.0}


async def test_a_run_cancelled_while_a_reply_is_due_ends_at_once_without_quit(fake_smtp, probe):
    server = fake_smtp("stalls-after-two-refusals")
    run = asyncio.ensure_future(probe(server, **PATIENT))
    while not server.seen.tarpit_sleeps:
        await asyncio.sleep(0.01)

    run.cancel()
    async with asyncio.timeout(10):  # QUIT after the stalled command would wait the minute out
        with pytest.raises(asyncio.CancelledError):
            await run

    # Its reply would be read as QUIT's: a connection with a reply due is closed, not reused.
    assert server.seen.commands[-1] != b"QUIT"


async def test_a_run_out_of_time_while_the_greeting_is_due_ends_at_its_deadline(fake_smtp, probe):
    server = fake_smtp("slow-banner", banner_delay=600)
    async with asyncio.timeout(10):  # QUIT before the greeting would wait out the connect timeout
        report = await probe(server, run_deadline=2.0, connect_timeout=60.0, **PATIENT)
    assert only_host(report).verdict == "inconclusive"
    assert b"QUIT" not in server.seen.commands


async def test_a_run_out_of_time_while_a_reply_is_due_ends_at_its_deadline(fake_smtp, probe):
    server = fake_smtp("stalls-after-two-refusals")
    async with asyncio.timeout(10):
        report = await probe(server, run_deadline=2.0, **PATIENT)
    host = only_host(report)
    assert host.verdict == "inconclusive" and host.duration_s < 5.0  # the deadline, not the command timeout
    assert server.seen.commands[-1] != b"QUIT"


@pytest.mark.slow
def test_the_cli_takes_the_host_budget(fake_smtp):
    # At the CLI's own threshold of a slow reply (1 s): a budget too small for the core vectors.
    server = fake_smtp("tarpit", tarpit_seconds=1.2)
    report, code = relaytest_json(server.port, "--host-budget", "9")
    host = report["hosts"][0]
    assert (report["verdict"], code) == ("inconclusive", 3)
    assert host["duration_s"] <= 9
    assert any(c["id"] == "vectors-not-run" for c in host["checks"])


# ---- services that are no SMTP server ----

NOT_SMTP_KEPT = 40  # printable characters of a foreign greeting a report may hold


@pytest.mark.parametrize("behaviour, first_words", [
    ("ssh", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3 a"),
    ("imap", "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN"),
])  # fmt: skip
async def test_a_service_that_is_not_smtp_ends_the_host_without_echoing_its_greeting(
    fake_smtp, probe, behaviour, first_words
):
    report = await probe(fake_smtp(behaviour))
    host = only_host(report)

    assert (host.verdict, host.vectors) == ("inconclusive", [])
    assert host.reason == f"could not test: not an SMTP server: it greeted with {first_words!r}"
    assert len(first_words) == NOT_SMTP_KEPT
    assert host.banner == first_words
    said = [line.line for line in host.transcript if line.dir == "S"]
    assert said == [first_words]
    assert "rest of its identification" not in json.dumps(report.to_dict())
    assert "Dovecot" not in json.dumps(report.to_dict())
