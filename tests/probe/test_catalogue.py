"""The vector catalogue is data; these tests hold it to the probe's safety rules."""

import re

from relaytests.probe import canary
from relaytests.probe.vectors import Placeholders, by_id, catalogue, select

NMAP_RECIPIENT_TRICKS = {
    "percent-host",
    "percent-iplit",
    "quoted",
    "quoted-percent",
    "double-at-host",
    "double-at-iplit",
    "quoted-at-iplit",
    "srcroute-host",
    "srcroute-iplit",
    "bang",
    "bang-host",
    "bang-iplit",
}


def words(**overrides):
    values = dict(
        canary_sender="b-x@canary.example.net",
        canary_user="r-tok",
        canary_domain="canary.example.net",
        target_domain="dept.example.edu",
        target_host="mx.dept.example.edu",
        target_ip="192.0.2.1",
        target_ip_literal="[192.0.2.1]",
        probe_helo="probe.example.net",
    )
    return Placeholders(**{**values, **overrides})


def test_ids_are_unique_and_stable_words():
    ids = [v.id for v in catalogue()]
    assert len(ids) == len(set(ids))
    assert all(id_.replace("-", "").isalnum() and id_.islower() for id_ in ids)


def test_it_covers_nmap_and_metasploit():
    assert {"plain", "null-sender", "spoof-host", "spoof-iplit"} | NMAP_RECIPIENT_TRICKS <= set(by_id())


def test_every_relay_recipient_is_built_from_the_canary_token():
    for vector in catalogue():
        rcpt = words().fill(vector.rcpt_to)
        if vector.evidence == "control":
            assert "canary" not in rcpt and vector.id == "control-inbound"
        elif vector.id == "rcpt-iplit":  # Metasploit's test 4: the token's mailbox at the server itself
            assert rcpt == "<r-tok@[192.0.2.1]>"
        else:
            assert "r-tok" in rcpt and "canary.example.net" in rcpt.lower(), vector.id


def test_the_routing_tricks_are_written_exactly():
    w = words()
    assert w.fill(by_id()["quoted"].rcpt_to) == '<"r-tok@canary.example.net">'
    assert w.fill(by_id()["srcroute-iplit"].rcpt_to) == "<@[192.0.2.1]:r-tok@canary.example.net>"
    assert w.fill(by_id()["bang-host"].rcpt_to) == "<canary.example.net!r-tok@mx.dept.example.edu>"
    assert w.fill(by_id()["unbracketed"].rcpt_to) == "r-tok@canary.example.net"
    assert w.fill(by_id()["case-variant"].rcpt_to) == "<r-tok@CANARY.EXAMPLE.NET>"


def test_select_keeps_catalogue_order_and_names_unknown_ids():
    assert [v.id for v in select(["bang", "plain"])] == ["plain", "bang"]
    try:
        select(["plain", "nope"])
    except ValueError as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("an unknown id must be refused")


def test_tokens_round_trip_and_refuse_forgery():
    tag = canary.host_tag("2001:db8::25", 587)
    token = canary.make_token("secret", canary.RECIPIENT, "abcdefghij", tag, "numeric-domain-percent")
    assert canary.parse_token("secret", token) == canary.CanaryToken(
        "r", "abcdefghij", tag, "numeric-domain-percent"
    )
    moved = token.replace(tag, canary.host_tag("2001:db8::26", 587))
    assert canary.parse_token("secret", moved) is None  # the MAC covers the host
    assert canary.parse_token("secret", token.upper()) is not None  # servers may change case
    assert canary.parse_token("other-secret", token) is None
    assert canary.parse_token("secret", token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    assert canary.parse_token("secret", "postmaster") is None


def test_every_vector_s_token_is_a_plain_local_part_of_at_most_64_octets():
    tag = canary.host_tag("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 65535)
    for vector in catalogue():
        for kind in (canary.RECIPIENT, canary.SENDER):
            token = canary.make_token("secret", kind, canary.new_run_id(), tag, vector.id)
            assert len(token) <= 64 and re.fullmatch(r"[a-z0-9-]+", token), token
