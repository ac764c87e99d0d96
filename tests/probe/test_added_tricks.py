"""The tricks catalogue 2026.12 added (issue 16 part 3), each against a fake open to exactly that trick.

Every one of them is caught by its own vectors and no others, and the closed fakes stay secure with
the whole catalogue, whatever extensions they advertise.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from relaytests.probe import canary
from relaytests.probe.report import HostReport
from relaytests.probe.vectors import by_id, catalogue, sender_variants
from tests.fakes import BEHAVIOURS, FakeSMTPServer
from tests.probe.test_suite_fakes import RUN_ID, SECRET, check, only_host

CANARY = "canary.example.net"
HOST = "mx.dept.example.edu"
# Extensions a closed server may advertise besides the fake's Postfix set: every vector runs.
EVERY_EXTENSION = ("SMTPUTF8", "CHUNKING")

# (fake behaviour, its listening address, the vectors it lets through, the host's verdict).
# Target-final vectors accepted alone are a warning on a secure host; canary-final ones accept relay.
CAUGHT = [
    ("open-literal-mailbox", "127.0.0.1", {"rcpt-iplit"}, "secure"),
    (
        "open-loopback",
        "127.0.0.2",  # so that [127.0.0.1] is not its own literal
        {"percent-localhost", "percent-loopback", "srcroute-localhost", "srcroute-loopback"},
        "secure",
    ),
    ("litfrom-percent", "127.0.0.1", {"percent-iplit-litfrom", "percent-host-litfrom"}, "secure"),
    ("nullfrom-srcroute", "127.0.0.1", {"srcroute-iplit-nullfrom"}, "secure"),
    ("srcroute-sender", "127.0.0.1", {"srcroute-sender"}, "accepts_relay"),
    ("open-dsn", "127.0.0.1", {"plain-dsn"}, "accepts_relay"),
    ("smtputf8-sender", "127.0.0.1", {"plain-smtputf8"}, "accepts_relay"),
    ("first-rcpt", "127.0.0.1", {"rcpt-after-local"}, "accepts_relay"),
    ("helo-domain", "127.0.0.1", {"helo-domain"}, "accepts_relay"),
]


def accepted(host: HostReport) -> set[str]:
    return {v.id for v in host.vectors if v.outcome == "accepted" and v.evidence != "control"}


def token(port: int, vector_id: str, kind: str = canary.RECIPIENT, address: str = "127.0.0.1") -> str:
    return canary.make_token(SECRET, kind, RUN_ID, canary.host_tag(address, port), vector_id)


def test_the_catalogue_has_45_vectors_or_more_and_every_added_one_says_where_it_comes_from():
    vectors = catalogue()
    assert len(vectors) >= 45
    added = [v for v in vectors if v.id in ADDED or v.base]
    assert len(added) >= 9 + 12  # the nine tricks and nmap's twelve routing tricks with its sender
    assert all(v.provenance for v in added), [v.id for v in added if not v.provenance]


ADDED = {
    "rcpt-iplit",
    "srcroute-sender",
    "percent-localhost",
    "percent-loopback",
    "srcroute-localhost",
    "srcroute-loopback",
    "rcpt-after-local",
    "plain-dsn",
    "plain-smtputf8",
    "plain-bdat",
    "helo-domain",
}


def test_sender_variants_are_the_base_trick_with_another_sender():
    variants = {variant.id: variant for variant in sender_variants()}
    assert set(variants) == {"litfrom", "nullfrom"}
    assert set(variants["litfrom"].bases) == {
        "percent-iplit",
        "percent-host",
        "quoted",
        "quoted-percent",
        "double-at-iplit",
        "quoted-at-iplit",
        "double-at-host",
        "srcroute-iplit",
        "srcroute-host",
        "bang",
        "bang-iplit",
        "bang-host",
    }  # nmap's tests 5 to 16
    vectors = by_id()
    for variant in variants.values():
        for base_id in variant.bases:
            made, base = vectors[f"{base_id}-{variant.id}"], vectors[base_id]
            assert (made.base, made.variant, made.family) == (base_id, variant.id, base_id)
            assert (made.rcpt_to, made.evidence, made.requires) == (
                base.rcpt_to,
                base.evidence,
                base.requires,
            )
            assert made.mail_from == variant.mail_from and made.tier == "ext"
            assert "sender_policy" in made.refusals
    assert vectors["bang-litfrom"].mail_from == "<{local_user}@{target_ip_literal}>"
    assert vectors["srcroute-iplit-nullfrom"].mail_from == "<>"


@pytest.mark.parametrize(("behaviour", "address", "caught", "verdict"), CAUGHT, ids=[c[0] for c in CAUGHT])
async def test_a_fake_open_to_one_added_trick_is_caught_by_exactly_its_vectors(
    probe, behaviour, address, caught, verdict
):
    with FakeSMTPServer(behaviour, address=address) as server:
        report = await probe(server)
    host = only_host(report)
    assert accepted(host) == caught
    assert host.verdict == verdict
    if verdict == "secure":  # accepted routed addresses ending at the server: a warning
        assert set(check(host, "routed-addresses-accepted").data["vectors"]) == caught
    else:
        assert all(vector_id in host.reason for vector_id in caught)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2"])
@pytest.mark.parametrize("behaviour", ["closed", "postfix-default", "exim"])
async def test_closed_servers_stay_secure_with_every_added_vector(probe, behaviour, address):
    server = FakeSMTPServer(replace(BEHAVIOURS[behaviour], extra_keywords=EVERY_EXTENSION), address=address)
    with server:
        report = await probe(server, send_data=True)
    host = only_host(report)
    assert host.verdict == "secure", host.reason
    tried = {v.id for v in host.vectors}
    expected = {v.id for v in catalogue() if v.tier != "sess" or v.helo} - {"control-inbound"}
    if address == "127.0.0.1":
        expected -= {"percent-loopback", "srcroute-loopback"}  # they would repeat the -iplit ones
    assert expected <= tried
    assert accepted(host) == set()
    assert not [c for c in host.checks if c.id == "routed-addresses-accepted"]
    assert {v.data_code for v in host.vectors} == {None}  # nothing accepted, so no test message
    assert server.seen.arguments(b"BDAT") == []


async def test_every_added_form_is_written_exactly(fake_smtp, probe):
    server = fake_smtp("closed", extra_keywords=EVERY_EXTENSION)
    ids = [*sorted(ADDED - {"plain-bdat", "helo-domain"}), "bang-litfrom", "srcroute-iplit-nullfrom"]
    report = await probe(server, vector_ids=ids)
    port = server.port
    t = {vector_id: token(port, vector_id) for vector_id in ids}
    s = {vector_id: f"{token(port, vector_id, canary.SENDER)}@{CANARY}" for vector_id in ids}
    wire = {
        "srcroute-sender": (f"<@{HOST}:{s['srcroute-sender']}>", [f"<{t['srcroute-sender']}@{CANARY}>"]),
        "plain-dsn": (
            f"<{s['plain-dsn']}>",
            [f"<{t['plain-dsn']}@{CANARY}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;{t['plain-dsn']}@{CANARY}"],
        ),
        "plain-smtputf8": (f"<{s['plain-smtputf8']}> SMTPUTF8", [f"<{t['plain-smtputf8']}@{CANARY}>"]),
        "rcpt-after-local": (
            f"<{s['rcpt-after-local']}>",
            ["<postmaster@dept.example.edu>", f"<{t['rcpt-after-local']}@{CANARY}>"],
        ),
        "rcpt-iplit": (f"<{s['rcpt-iplit']}>", [f"<{t['rcpt-iplit']}@[127.0.0.1]>"]),
        "percent-localhost": (
            f"<{s['percent-localhost']}>",
            [f"<{t['percent-localhost']}%{CANARY}@localhost>"],
        ),
        "srcroute-localhost": (
            f"<{s['srcroute-localhost']}>",
            [f"<@localhost:{t['srcroute-localhost']}@{CANARY}>"],
        ),
        "bang-litfrom": ("<relaytest@[127.0.0.1]>", [f"<{CANARY}!{t['bang-litfrom']}>"]),
        "srcroute-iplit-nullfrom": ("<>", [f"<@[127.0.0.1]:{t['srcroute-iplit-nullfrom']}@{CANARY}>"]),
    }
    host = only_host(report)
    # The two loopback-literal vectors would repeat the -iplit ones against a server at 127.0.0.1.
    assert (
        "percent-loopback, srcroute-loopback (its own literal is [127.0.0.1])"
        in check(host, "vectors-not-applicable").detail
    )
    order = [v.id for v in host.vectors]
    assert set(order) == set(wire)
    assert server.seen.mail_arguments == [wire[i][0].encode() for i in order]
    assert server.seen.rcpt_arguments == [r.encode() for i in order for r in wire[i][1]]


async def test_a_helo_under_the_server_s_domain_is_its_own_session(fake_smtp, probe):
    server = fake_smtp("helo-domain")
    report = await probe(server, vector_ids=["plain", "helo-domain", "helo-self"])
    host = only_host(report)
    assert accepted(host) == {"helo-domain"}  # its own name is no name under its domain
    assert b"EHLO relaytest.dept.example.edu" in server.seen.commands
    assert {v.id: v.helo for v in host.vectors}["helo-domain"] == "relaytest.dept.example.edu"


async def test_no_test_message_goes_to_a_transaction_with_a_local_recipient(fake_smtp, probe):
    """The canary only: after postmaster was accepted, the canary recipient gets no DATA."""
    server = fake_smtp("first-rcpt")
    report = await probe(server, vector_ids=["plain", "rcpt-after-local"], send_data=True)
    host = only_host(report)
    result = {v.id: v for v in host.vectors}["rcpt-after-local"]
    assert (result.outcome, result.data_code) == ("accepted", None)
    assert host.verdict == "accepts_relay"
    assert b"DATA" not in server.seen.commands
    assert sum(conn.messages for conn in server.seen.connections) == 0


async def test_bdat_takes_the_test_message_where_a_data_stage_policy_refuses_it(fake_smtp, probe):
    server = fake_smtp("data-refusal")
    report = await probe(server, vector_ids=["plain", "plain-bdat"], send_data=True)
    host = only_host(report)
    results = {v.id: v for v in host.vectors}
    assert (results["plain"].data_code, results["plain-bdat"].data_code) == (554, 250)
    assert results["plain-bdat"].data_reply == "250 2.0.0 Ok: queued as FAKE0002"
    bdat = [line for line in server.seen.commands if line.startswith(b"BDAT")]
    assert len(bdat) == 1 and bdat[0].endswith(b" LAST")
    assert sum(conn.messages for conn in server.seen.connections) == 1
    assert b"DATA" in server.seen.commands  # the plain vector's, refused


async def test_bdat_and_the_extension_vectors_wait_for_the_server_to_advertise_them(fake_smtp, probe):
    report = await probe(fake_smtp("closed"), send_data=True)
    detail = check(only_host(report), "vectors-not-applicable").detail
    assert "plain-smtputf8 (SMTPUTF8 not offered)" in detail
    assert "plain-bdat (CHUNKING not offered)" in detail
    assert "plain-dsn" not in detail  # the fake advertises DSN, as Postfix does
    report = await probe(fake_smtp("closed", extra_keywords=EVERY_EXTENSION))
    assert "plain-bdat (canary delivery is off)" in check(only_host(report), "vectors-not-applicable").detail
