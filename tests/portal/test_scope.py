"""The scope check: parse once, resolve once (against the test DNS server), keep only what may be tested."""

import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal import env
from relaytests import scope
from relaytests.probe.targets import TargetError
from tests.dnsserver import ZoneServer

ZONE = """
mail.physics.example.edu. A 130.59.10.25
mail.physics.example.edu. AAAA 2001:620::25
intranet.physics.example.edu. A 10.1.2.3
physics.example.edu. MX 10 mail.physics.example.edu.
physics.example.edu. MX 20 backup.provider.example.com.
backup.provider.example.com. A 145.0.2.80
chemistry.example.edu. MX 10 mx.chemistry.example.edu.
mx.chemistry.example.edu. A 130.59.20.25
mail.example.com. A 130.59.30.25
elsewhere.physics.example.edu. A 8.8.8.8
elsewhere.chemistry.example.edu. A 8.8.4.4
alias.physics.example.edu. CNAME mx.provider.example.com.
mx.provider.example.com. A 130.59.50.25
aliased.example.edu. MX 10 mx.aliased.example.edu.
mx.aliased.example.edu. CNAME mx.provider.example.com.
sixtofour.physics.example.edu. AAAA 2002:a00:1::25
teredo.physics.example.edu. AAAA 2001:0:4136:e378:8000:63bf:f5ff:fffe
nat64.physics.example.edu. AAAA 64:ff9b::a00:1
mapped.physics.example.edu. AAAA ::ffff:a00:1
""" + "".join(f"many.physics.example.edu. A 130.59.40.{n}\n" for n in range(1, 6))


@pytest.fixture(scope="module")
def zone_server():
    with ZoneServer(ZONE) as server:
        yield server


@pytest.fixture
def dns(settings, zone_server):
    """Scope: names under example.edu, no network; lookups go to the zone above."""
    settings.RELAYTEST_SCOPE_DOMAINS = ["example.edu"]
    settings.RELAYTEST_SCOPE_NETWORKS = []
    settings.RELAYTEST_ALLOW_PRIVATE = False
    settings.RELAYTEST_RESOLVER = zone_server.address
    return zone_server


@pytest.mark.parametrize(
    "typed, domain, expected",
    [
        ("Mail.Physics.Example.EDU", False, ("mail.physics.example.edu", "host", 25)),
        ("mail.physics.example.edu:2525", False, ("mail.physics.example.edu", "host", 2525)),
        ("192.0.2.25", False, ("192.0.2.25", "ip", 25)),
        ("[2001:DB8:0::25]:587", False, ("2001:db8::25", "ip", 587)),
        ("physics.example.edu", True, ("physics.example.edu", "domain", 25)),
        ("müller.example.edu", False, ("xn--mller-kva.example.edu", "host", 25)),
    ],
)
def test_parse_normalises_what_was_typed_and_tells_its_kind(typed, domain, expected):
    assert scope.parse(typed, domain=domain) == expected


def test_an_address_is_not_a_mail_domain():
    with pytest.raises(TargetError, match=re.escape("192.0.2.25 is an address, not a mail domain")):
        scope.parse("192.0.2.25", domain=True)


def test_a_host_name_in_an_allowed_domain_is_resolved_once_into_its_addresses(dns):
    scoped = scope.check("mail.physics.example.edu", "host", 25)

    assert scoped.addresses == ["130.59.10.25", "2001:620::25"]
    assert scoped.host_names == ["mail.physics.example.edu"]


def test_a_name_outside_the_allowed_domains_is_refused_without_a_lookup(dns, settings):
    settings.RELAYTEST_RESOLVER = "127.0.0.1:9"  # nothing answers there: a lookup would fail differently
    with pytest.raises(scope.OutOfScope, match=re.escape("mail.example.com is not under example.edu")):
        scope.check("mail.example.com", "host", 25)


def test_a_name_that_does_not_exist_says_so(dns):
    with pytest.raises(TargetError, match=re.escape("nosuch.physics.example.edu")):
        scope.check("nosuch.physics.example.edu", "host", 25)


def test_a_private_address_behind_an_allowed_name_is_refused_unless_allowed(dns, settings):
    with pytest.raises(
        scope.OutOfScope, match=r"intranet.physics.example.edu \(10.1.2.3\) is a private address"
    ):
        scope.check("intranet.physics.example.edu", "host", 25)

    settings.RELAYTEST_ALLOW_PRIVATE = True
    assert scope.check("intranet.physics.example.edu", "host", 25).addresses == ["10.1.2.3"]


def test_a_mail_domain_is_refused_when_one_of_its_mx_hosts_is_outside_the_scope(dns):
    with pytest.raises(scope.OutOfScope, match=r"backup.provider.example.com \(145.0.2.80\) is outside"):
        scope.check("physics.example.edu", "domain", 25)


def test_a_mail_domain_gives_the_addresses_of_its_mx_hosts(dns):
    scoped = scope.check("chemistry.example.edu", "domain", 25)

    assert (scoped.addresses, scoped.host_names) == (["130.59.20.25"], ["mx.chemistry.example.edu"])


def test_an_address_needs_a_scope_network(dns, settings):
    with pytest.raises(scope.OutOfScope, match=re.escape("130.59.10.25 is outside this portal's scope")):
        scope.check("130.59.10.25", "ip", 25)

    settings.RELAYTEST_SCOPE_NETWORKS = ["130.59.0.0/16"]
    assert scope.check("130.59.10.25", "ip", 25).addresses == ["130.59.10.25"]


def test_loopback_is_refused_unless_a_scope_network_holds_it(dns, settings):
    settings.RELAYTEST_SCOPE_NETWORKS = ["130.59.0.0/16"]
    with pytest.raises(scope.OutOfScope, match=re.escape("127.0.0.5 is a loopback address")):
        scope.check("127.0.0.5", "ip", 25)

    settings.RELAYTEST_SCOPE_NETWORKS = ["127.0.0.0/8"]
    assert scope.check("127.0.0.5", "ip", 25).addresses == ["127.0.0.5"]


@pytest.mark.parametrize(
    "address, words", [("224.0.0.5", "a multicast address"), ("0.0.0.0", "the unspecified address")]
)
def test_addresses_that_are_no_host_are_never_tested_even_inside_a_scope_network(
    dns, settings, address, words
):
    settings.RELAYTEST_SCOPE_NETWORKS = ["0.0.0.0/0"]
    settings.RELAYTEST_ALLOW_PRIVATE = True
    with pytest.raises(scope.OutOfScope, match=f"{address} is {words}"):
        scope.check(address, "ip", 25)


def test_a_portal_without_any_scope_refuses_everything_and_says_what_to_set(dns, settings):
    settings.RELAYTEST_SCOPE_DOMAINS = []
    with pytest.raises(scope.OutOfScope, match="RELAYTEST_SCOPE_DOMAINS"):
        scope.check("mail.physics.example.edu", "host", 25)


# ---- names that lead elsewhere, addresses that hide others, and the limits ----


def test_a_name_in_scope_resolving_outside_the_scope_networks_is_refused(dns, settings):
    settings.RELAYTEST_SCOPE_NETWORKS = ["130.59.0.0/16"]
    with pytest.raises(
        scope.OutOfScope, match=r"\(8.8.8.8\) is outside the scope networks \(130.59.0.0/16\)"
    ):
        scope.check("elsewhere.physics.example.edu", "host", 25)


def test_names_allowed_anywhere_may_resolve_outside_the_scope_networks(dns, settings):
    settings.RELAYTEST_SCOPE_NETWORKS = ["130.59.0.0/16"]
    settings.RELAYTEST_SCOPE_NAMES_ANYWHERE = ["physics.example.edu"]

    assert scope.check("elsewhere.physics.example.edu", "host", 25).addresses == ["8.8.8.8"]
    with pytest.raises(scope.OutOfScope, match=r"\(8.8.4.4\) is outside the scope networks"):
        scope.check("elsewhere.chemistry.example.edu", "host", 25)  # not under physics


@pytest.mark.parametrize(
    "target, kind, alias",
    [
        ("alias.physics.example.edu", "host", "alias.physics.example.edu"),
        ("aliased.example.edu", "domain", "mx.aliased.example.edu"),
    ],
)
def test_a_name_that_is_an_alias_of_a_name_outside_the_scope_domains_is_refused(dns, target, kind, alias):
    why = f"{alias} is an alias (CNAME) of mx.provider.example.com, which is not under example.edu"
    with pytest.raises(scope.OutOfScope, match=re.escape(why)):
        scope.check(target, kind, 25)


@pytest.mark.parametrize(
    "name, address, how",
    [
        ("sixtofour", "2002:a00:1::25", "a 6to4 address (2002::/16) embedding 10.0.0.1"),
        ("teredo", "2001:0:4136:e378:8000:63bf:f5ff:fffe", "a Teredo address (2001::/32) embedding 10.0.0.1"),
        ("nat64", "64:ff9b::a00:1", "a NAT64 address (64:ff9b::/96) embedding 10.0.0.1"),
        ("mapped", "::ffff:10.0.0.1", "an IPv4-mapped address (::ffff:0:0/96) embedding 10.0.0.1"),
    ],
)
def test_an_ipv6_address_hiding_a_private_ipv4_address_is_refused_saying_how(
    dns, settings, name, address, how
):
    settings.RELAYTEST_ALLOW_PRIVATE = True  # even then: an address in disguise is never tested
    target = f"{name}.physics.example.edu"
    why = f"{target} ({address}) is {how}, a private address"
    with pytest.raises(scope.OutOfScope, match=re.escape(why)):
        scope.check(target, "host", 25)


def test_a_target_with_more_addresses_than_allowed_is_refused_not_cut_short(dns, settings):
    settings.RELAYTEST_MAX_ADDRESSES = 4
    with pytest.raises(TargetError, match="has 5 addresses; this portal tests at most 4 "):
        scope.check("many.physics.example.edu", "host", 25)

    settings.RELAYTEST_MAX_ADDRESSES = 5
    assert len(scope.check("many.physics.example.edu", "host", 25).addresses) == 5


def test_a_port_that_is_not_a_mail_port_is_refused_before_any_lookup(dns, settings):
    settings.RELAYTEST_RESOLVER = "127.0.0.1:9"  # nothing answers there: a lookup would fail differently
    why = "Port 6379 is not one this portal tests (25, 465, 587, 2525)"
    with pytest.raises(scope.OutOfScope, match=re.escape(why)):
        scope.check("mail.physics.example.edu", "host", 6379)


def test_the_mail_ports_are_allowed_by_default_and_others_by_setting(dns, settings):
    for port in (25, 465, 587, 2525):
        assert scope.check("mail.physics.example.edu", "host", port).port == port

    settings.RELAYTEST_ALLOWED_PORTS = [6379]
    assert scope.check("mail.physics.example.edu", "host", 6379).port == 6379


def test_every_other_port_a_server_lists_is_checked_as_its_port_is(dns, settings):
    settings.RELAYTEST_RESOLVER = "127.0.0.1:9"  # refused before any lookup, as the target's own port
    why = "Port 6379 is not one this portal tests (25, 465, 587, 2525)"
    with pytest.raises(scope.OutOfScope, match=re.escape(why)):
        scope.check("mail.physics.example.edu", "host", 25, [587, 6379])


def test_the_other_ports_are_kept_once_and_never_the_targets_own(dns):
    scoped = scope.check("mail.physics.example.edu", "host", 587, [465, 25, 587, 465])

    assert (scoped.port, scoped.more_ports) == (587, [465, 25])
    assert scope.check("mail.physics.example.edu", "host", 25).more_ports == []


# ---- the scope domains as configured ----


def test_scope_domains_are_read_as_targets_are_written_idna_2008(monkeypatch):
    monkeypatch.setenv("RELAYTEST_SCOPE_DOMAINS", "Fa\u00df.Example.DE., dept.example.edu")
    assert env.domains("RELAYTEST_SCOPE_DOMAINS") == ["xn--fa-hia.example.de", "dept.example.edu"]


def test_a_scope_domain_that_is_no_domain_name_stops_the_start_with_the_reason(monkeypatch):
    monkeypatch.setenv("RELAYTEST_SCOPE_NAMES_ANYWHERE", "dept.example.edu \u2603.example")
    with pytest.raises(ImproperlyConfigured) as raised:
        env.domains("RELAYTEST_SCOPE_NAMES_ANYWHERE")
    assert str(raised.value).startswith(
        "RELAYTEST_SCOPE_NAMES_ANYWHERE: '\u2603.example' is not a valid host name: label '\u2603' is not valid IDNA 2008"
    )
