"""Targets: parsing what a person typed, and resolving it through a DNS server inside the test."""

import re

import pytest

from relaytests.probe.targets import (
    HostTarget,
    TargetError,
    parse_listen_address,
    parse_target,
    resolve_target,
)
from tests.dnsserver import SilentResolver, ZoneServer

ZONE = """
mx.example.edu.          A     192.0.2.25
mx.example.edu.          AAAA  2001:db8::25
v6only.example.edu.      AAAA  2001:db8::26
noaddress.example.edu.   TXT   "no address here"
halfdead.example.edu.    A     192.0.2.27
halfdead.example.edu.    AAAA  2001:db8::27

example.edu.             MX    20 mx2.example.edu.
example.edu.             MX    10 mx.example.edu.
mx2.example.edu.         A     192.0.2.26

shared.example.edu.      MX    10 mx.example.edu.
shared.example.edu.      MX    20 mx-alias-addr.example.edu.
mx-alias-addr.example.edu. A   192.0.2.25

nomx.example.edu.        A     192.0.2.30
nullmx.example.edu.      MX    0 .
nothing.example.edu.     TXT   "v=spf1 -all"
deadmx.example.edu.      MX    10 mx.dead.example.edu.
"""

SHORT = 0.5  # seconds a silent resolver is waited for


@pytest.fixture
def dns_server():
    with ZoneServer(ZONE, silent=("dead.example.edu", "halfdead.example.edu AAAA")) as server:
        yield server


# ---- parse_target ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mx.example.edu", ("mx.example.edu", 25)),
        ("MX.Example.EDU.", ("mx.example.edu", 25)),
        ("mx.example.edu:2525", ("mx.example.edu", 2525)),
        ("  mx.example.edu  ", ("mx.example.edu", 25)),
        ("192.0.2.25", ("192.0.2.25", 25)),
        ("192.0.2.25:587", ("192.0.2.25", 587)),
        ("[2001:db8::25]", ("2001:db8::25", 25)),
        ("[2001:DB8:0::25]:2525", ("2001:db8::25", 2525)),
        ("2001:db8::25", ("2001:db8::25", 25)),
        ("[192.0.2.25]", ("192.0.2.25", 25)),
        ("bücher.example", ("xn--bcher-kva.example", 25)),
        ("localhost", ("localhost", 25)),
    ],
)
def test_parse_target_accepts_names_and_addresses(text, expected):
    assert parse_target(text) == expected


def test_parse_target_uses_the_default_port():
    assert parse_target("mx.example.edu", default_port=587) == ("mx.example.edu", 587)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mx..example", "'mx..example' is not a valid host name: empty label"),
        (".example.edu", "'.example.edu' is not a valid host name: empty label"),
        ("mx.example.edu:70000", "port 70000 is out of range (1-65535)"),
        ("mx.example.edu:0", "port 0 is out of range (1-65535)"),
        ("mx.example.edu:smtp", "port 'smtp' is not a number from 1 to 65535"),
        ("mx.example.edu:", "port '' is not a number from 1 to 65535"),
        ("mx.example.edu:\u00b2", "port '\u00b2' is not a number from 1 to 65535"),
        ("mx.example.edu:0000000025", "port '0000000025' is not a number from 1 to 65535"),
        ("mx.example.edu\n:25", "the target has a line break or another control character in it"),
        ("mx.exa\x00mple.edu", "the target has a line break or another control character in it"),
        ("[2001:db8::25]:99999", "port 99999 is out of range (1-65535)"),
        (
            "-mx.example.edu",
            "'-mx.example.edu' is not a valid host name: label '-mx' starts or ends with a hyphen",
        ),
        (
            "mx_1.example.edu",
            "'mx_1.example.edu' is not a valid host name: label 'mx_1' has characters other than letters, digits and hyphens",
        ),
        (
            "mx example.edu",
            "'mx example.edu' is not a valid host name: label 'mx example' has characters other than letters, digits "
            "and hyphens",
        ),
        (
            "a" * 64 + ".example.edu",
            f"'{'a' * 64}.example.edu' is not a valid host name: label '{'a' * 64}' is longer than 63 characters",
        ),
        (
            ".".join(["a" * 63] * 4),
            f"'{'.'.join(['a' * 63] * 4)}' is not a valid host name: longer than 253 characters",
        ),
        (
            "192.0.2.256",
            "'192.0.2.256' is neither an IP address nor a valid host name: its last label is all digits",
        ),
        ("[mx.example.edu]", "'mx.example.edu' is not an IP address: brackets are only for IP addresses"),
        ("[2001:db8::25", "'[2001:db8::25' has an unclosed '[' or text after ']'"),
        ("", "no target given: type a host name, an IP address or a mail domain"),
        ("   ", "no target given: type a host name, an IP address or a mail domain"),
        (":25", "no host name given"),
    ],
)
def test_parse_target_says_what_is_wrong(text, message):
    with pytest.raises(TargetError) as raised:
        parse_target(text)
    assert str(raised.value) == message


def test_a_unicode_label_without_an_idna_form_is_refused():
    label = "\u00fc" * 60  # 60 characters, but longer than 63 once encoded
    with pytest.raises(TargetError) as raised:
        parse_target(f"mx.{label}.example")
    assert str(raised.value) == (
        f"'mx.{label}.example' is not a valid host name: label '{label}' is not valid IDNA 2008 (Label too long)"
    )


@pytest.mark.parametrize(
    ("text", "ascii_name"),
    [
        ("mx.fa\u00df.de", "mx.xn--fa-hia.de"),  # IDNA 2003 (Python's "idna" codec) made it mx.fass.de
        ("MX.FA\u00df.DE", "mx.xn--fa-hia.de"),
        ("mx.M\u00fcller.example", "mx.xn--mller-kva.example"),
        ("mx\u3002example\u3002edu", "mx.example.edu"),  # UTS 46 maps the ideographic full stop
        ("mx.XN--FA-HIA.de", "mx.xn--fa-hia.de"),
    ],
)
def test_a_unicode_name_is_written_as_idna_2008_with_uts_46_mapping(text, ascii_name):
    assert parse_target(text) == (ascii_name, 25)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        # IDNA 2003 encoded symbols (xn--n3h); IDNA 2008 allows none of them in a name.
        (
            "\u2603.example",
            "label '\u2603' is not valid IDNA 2008 (Codepoint U+2603 at position 1 of '\u2603' not allowed)",
        ),
        ("mx.xn--zz.example", "label 'xn--zz' is not valid IDNA 2008 (Invalid A-label)"),
    ],
)
def test_a_label_that_idna_2008_refuses_is_refused_with_the_reason(text, why):
    with pytest.raises(TargetError) as raised:
        parse_target(text)
    assert str(raised.value) == f"'{text}' is not a valid host name: {why}"


# ---- resolve_target: host names and addresses -------------------------------------------------


async def test_an_ip_literal_needs_no_dns():
    with SilentResolver() as silent:
        resolved = await resolve_target("[2001:db8::25]:2525", resolver=silent.address, timeout=SHORT)
    assert resolved.error is None
    assert resolved.hosts == [HostTarget("2001:db8::25", 2525)]
    assert resolved.label == "2001:db8::25"


async def test_a_host_name_is_one_host_per_ipv4_and_ipv6_address(dns_server):
    resolved = await resolve_target("mx.example.edu", resolver=dns_server.address)
    assert resolved.error is None
    assert resolved.hosts == [
        HostTarget("192.0.2.25", 25, name="mx.example.edu"),
        HostTarget("2001:db8::25", 25, name="mx.example.edu"),
    ]
    assert resolved.checks == []


async def test_the_port_applies_to_every_host(dns_server):
    resolved = await resolve_target("mx.example.edu:2525", resolver=dns_server.address)
    assert [host.port for host in resolved.hosts] == [2525, 2525]


async def test_an_ipv6_only_name_is_one_host(dns_server):
    resolved = await resolve_target("v6only.example.edu", resolver=dns_server.address)
    assert resolved.hosts == [HostTarget("2001:db8::26", 25, name="v6only.example.edu")]


async def test_a_name_that_does_not_exist_is_an_error(dns_server):
    resolved = await resolve_target("nosuch.example.edu", resolver=dns_server.address)
    assert resolved.hosts == []
    assert resolved.error == "nosuch.example.edu does not exist (NXDOMAIN)"


async def test_a_name_without_addresses_is_an_error(dns_server):
    resolved = await resolve_target("noaddress.example.edu", resolver=dns_server.address)
    assert resolved.hosts == []
    assert resolved.error == "noaddress.example.edu has no A or AAAA record"


async def test_a_silent_resolver_is_dns_unavailable_not_an_empty_answer():
    with SilentResolver() as silent:
        resolved = await resolve_target("mx.example.edu", resolver=silent.address, timeout=SHORT)
    assert resolved.hosts == []
    assert resolved.error == f"DNS unavailable: no answer from {silent.address} within 0.5 s"


async def test_one_family_unanswered_tests_the_other_and_says_so(dns_server):
    resolved = await resolve_target("halfdead.example.edu", resolver=dns_server.address, timeout=SHORT)
    assert resolved.error is None
    assert resolved.hosts == [HostTarget("192.0.2.27", 25, name="halfdead.example.edu")]
    [check] = resolved.checks
    assert (check.id, check.status) == ("addresses", "error")
    assert check.detail == (
        f"Could not look up every address of halfdead.example.edu (DNS unavailable: no answer from "
        f"{dns_server.address} within 0.5 s), so only 192.0.2.27 is tested."
    )


async def test_a_bad_target_is_an_error_not_an_exception():
    resolved = await resolve_target("mx..example")
    assert resolved.hosts == []
    assert resolved.error == "'mx..example' is not a valid host name: empty label"


async def test_a_bad_resolver_setting_is_an_error_not_an_exception():
    resolved = await resolve_target("mx.example.edu", resolver="dns.example.edu:53")
    assert (
        resolved.error
        == "DNS unavailable: resolver 'dns.example.edu:53' is not an IP address with an optional :PORT"
    )


# ---- resolve_target: mail domains ---------------------------------------------------------------


async def test_a_domain_is_its_mx_hosts_by_preference(dns_server):
    resolved = await resolve_target("example.edu", domain=True, resolver=dns_server.address)
    assert resolved.error is None
    assert resolved.label == "example.edu"
    assert resolved.hosts == [
        HostTarget("192.0.2.25", 25, name="mx.example.edu", mail_domain="example.edu"),
        HostTarget("2001:db8::25", 25, name="mx.example.edu", mail_domain="example.edu"),
        HostTarget("192.0.2.26", 25, name="mx2.example.edu", mail_domain="example.edu"),
    ]
    [mx] = resolved.checks
    assert (mx.id, mx.status) == ("mx", "pass")
    assert (
        mx.detail
        == "example.edu receives mail on mx.example.edu (preference 10), mx2.example.edu (preference 20)."
    )


async def test_an_address_shared_by_two_mx_hosts_is_tested_once(dns_server):
    resolved = await resolve_target("shared.example.edu", domain=True, resolver=dns_server.address)
    assert [(host.address, host.name) for host in resolved.hosts] == [
        ("192.0.2.25", "mx.example.edu"),
        ("2001:db8::25", "mx.example.edu"),
    ]


async def test_a_domain_without_mx_falls_back_to_its_own_address(dns_server):
    resolved = await resolve_target("nomx.example.edu", domain=True, resolver=dns_server.address)
    assert resolved.error is None
    assert resolved.hosts == [
        HostTarget("192.0.2.30", 25, name="nomx.example.edu", mail_domain="nomx.example.edu")
    ]
    assert resolved.checks[0].status == "info"


async def test_a_null_mx_domain_has_nothing_to_test(dns_server):
    resolved = await resolve_target("nullmx.example.edu", domain=True, resolver=dns_server.address)
    assert resolved.hosts == []
    assert resolved.error == (
        "nullmx.example.edu publishes a null MX (RFC 7505): it accepts no mail, nothing to test"
    )
    assert (resolved.checks[0].id, resolved.checks[0].status) == ("mx", "info")


async def test_a_domain_without_mx_or_address_has_nothing_to_test(dns_server):
    resolved = await resolve_target("nothing.example.edu", domain=True, resolver=dns_server.address)
    assert resolved.hosts == []
    assert resolved.error == (
        "nothing.example.edu has no MX record and no address of its own, so it can receive no mail, nothing to test"
    )


async def test_a_domain_that_does_not_exist_has_nothing_to_test(dns_server):
    resolved = await resolve_target("nosuch.example.edu", domain=True, resolver=dns_server.address)
    assert resolved.hosts == []
    assert resolved.error == (
        "nosuch.example.edu does not exist in DNS (NXDOMAIN), so it can receive no mail, nothing to test"
    )


async def test_a_domain_whose_mx_host_never_resolves_is_an_error(dns_server):
    resolved = await resolve_target(
        "deadmx.example.edu", domain=True, resolver=dns_server.address, timeout=SHORT
    )
    assert resolved.hosts == []
    assert resolved.error == (
        "Could not look up every address of the MX host mx.dead.example.edu of deadmx.example.edu: "
        f"DNS unavailable: no answer from {dns_server.address} within 0.5 s"
    )
    assert resolved.checks[0].status == "error"


async def test_a_domain_with_the_resolver_down_is_dns_unavailable():
    with SilentResolver() as silent:
        resolved = await resolve_target("example.edu", domain=True, resolver=silent.address, timeout=SHORT)
    assert resolved.hosts == []
    assert resolved.error == (
        f"Could not look up the MX records of example.edu: DNS unavailable: no answer from {silent.address} "
        "within 0.5 s"
    )
    assert (resolved.checks[0].id, resolved.checks[0].status) == ("mx", "error")


async def test_an_ip_address_is_not_a_mail_domain():
    resolved = await resolve_target("192.0.2.25", domain=True)
    assert resolved.hosts == []
    assert resolved.error == "192.0.2.25 is an IP address, not a mail domain"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:2525", ("127.0.0.1", 2525)),
        ("[::1]:2526", ("::1", 2526)),
        ("Localhost:25", ("localhost", 25)),
    ],
)
def test_a_listen_address_is_host_and_port(text, expected):
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [("nonsense", "give HOST:PORT"), ("[::1]", "give HOST:PORT"), ("127.0.0.1:70000", "out of range")],
)
def test_a_listen_address_without_a_usable_port_is_refused(text, why):
    with pytest.raises(TargetError, match=re.escape(why)):
        parse_listen_address(text)
