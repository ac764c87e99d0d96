"""DNS checks (issue 6) against zones served by a DNS server inside the test; no public resolver is asked."""

import dns.asyncresolver
import dns.reversename
import pytest

from relaytests.probe.dnschecks import (
    DEFAULT_DNSBL_ZONES,
    KNOWN_BLOCKLISTS,
    Blocklist,
    blocklist,
    domain_checks,
    host_checks,
    parse_resolver,
)
from tests.dnsserver import SilentResolver, ZoneServer

SHORT = 1.5  # seconds a silent resolver or zone is waited for; an answering one answers well within it, even on a loaded machine
RESOLVER = "<the test's DNS server>"  # stands in expected texts for the address of the DNS server


def ptr(address: str, name: str) -> str:
    return f"{dns.reversename.from_address(address)} PTR {name}"


def listing(address: str, zone: str, *answers: str) -> str:
    """Zone lines that make a blocklist answer for an address."""
    query = dns.reversename.from_address(address).to_text()
    query = query.removesuffix(".in-addr.arpa.").removesuffix(".ip6.arpa.")
    return "\n".join(f"{query}.{zone}. {answer}" for answer in answers)


ZONE = "\n".join(
    [
        # MX
        "example.edu. MX 20 mx2.example.edu.",
        "example.edu. MX 10 mx1.example.edu.",
        "mx1.example.edu. A 192.0.2.25",
        "mx1.example.edu. AAAA 2001:db8::25",
        "mx2.example.edu. A 192.0.2.26",
        "alias.example.edu. MX 10 mail.example.edu.",
        "mail.example.edu. CNAME mx1.example.edu.",
        "literal.example.edu. MX 10 192.0.2.25.",
        "nullmx.example.edu. MX 0 .",
        "halfnull.example.edu. MX 0 .",
        "halfnull.example.edu. MX 10 mx1.example.edu.",
        "nomx.example.edu. A 192.0.2.30",
        "onebad.example.edu. MX 10 mx1.example.edu.",
        "onebad.example.edu. MX 20 gone.example.edu.",
        "allbad.example.edu. MX 10 gone.example.edu.",
        "allbad.example.edu. MX 20 gone2.example.edu.",
        'nothing.example.edu. TXT "no mail here"',
        # reverse DNS
        ptr("192.0.2.25", "mx1.example.edu."),
        ptr("2001:db8::25", "mx1.example.edu."),
        ptr("192.0.2.40", "unconfirmed.example.edu."),
        "unconfirmed.example.edu. A 192.0.2.99",
        ptr("192.0.2.41", "host-192-0-2-41.example.net."),
        "host-192-0-2-41.example.net. A 192.0.2.41",
        ptr("192.0.2.42", "dyn42.pool.example.net."),
        "dyn42.pool.example.net. A 192.0.2.42",
        ptr("192.0.2.44", "mx.dead.example."),
        *(ptr("192.0.2.46", f"name{n}.example.edu.") for n in range(8)),
        *(f"name{n}.example.edu. A 192.0.2.46" for n in range(8)),
        *(f"many.example.edu. MX {n} mx{n}.many.example.edu." for n in range(20)),
        # blocklists
        listing(
            "192.0.2.66",
            "zen.spamhaus.org",
            "A 127.0.0.2",
            'TXT "https://check.spamhaus.org/sbl/query/SBL123"',
        ),
        listing("192.0.2.67", "zen.spamhaus.org", "A 127.0.0.2", "A 127.0.0.4"),
        listing("192.0.2.68", "zen.spamhaus.org", "A 127.255.255.254"),
        listing("192.0.2.69", "zen.spamhaus.org", "A 198.51.100.7"),
        listing("192.0.2.66", "bl.spamcop.net", "A 127.0.0.2"),
        listing("2001:db8::66", "zen.spamhaus.org", "A 127.0.0.3", 'TXT "snowshoe \x07range"'),
        listing("192.0.2.66", "dnsbl.example.edu", "A 127.0.0.5"),
        listing("192.0.2.68", "dnsbl.example.edu", "A 127.255.255.1"),
        # SPF
        'example.edu. TXT "v=spf1 mx ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.example.org ~all"',
        'example.edu. TXT "google-site-verification=abc"',
        'two.example.edu. TXT "v=spf1 -all"',
        'two.example.edu. TXT "v=spf1 mx -all"',
        'badmech.example.edu. TXT "v=spf1 mx foo:bar -all"',
        'badnet.example.edu. TXT "v=spf1 ip4:192.0.2.0/33 -all"',
        'badv6.example.edu. TXT "v=spf1 ip6:192.0.2.1 -all"',
        'badinclude.example.edu. TXT "v=spf1 include -all"',
        'redirect2.example.edu. TXT "v=spf1 redirect=a.example.org redirect=b.example.org"',
        'plusall.example.edu. TXT "v=spf1 mx +all"',
        'split.example.edu. TXT "v=spf1 ip4:192.0." "2.0/24 -all"',
        # DMARC
        '_dmarc.example.edu. TXT "v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@example.edu"',
        "dept.example.edu. A 192.0.2.50",
        '_dmarc.none.example.edu. TXT "v=DMARC1; p=none; rua=mailto:dmarc@example.edu"',
        '_dmarc.nop.example.edu. TXT "v=DMARC1; rua=mailto:dmarc@example.edu"',
        '_dmarc.badp.example.edu. TXT "v=DMARC1; p=block"',
        '_dmarc.badpct.example.edu. TXT "v=DMARC1; p=reject; pct=150"',
        '_dmarc.notpair.example.edu. TXT "v=DMARC1; p=reject; strict"',
        '_dmarc.twice.example.edu. TXT "v=DMARC1; p=reject; p=none"',
        '_dmarc.twodmarc.example.edu. TXT "v=DMARC1; p=reject"',
        '_dmarc.twodmarc.example.edu. TXT "v=DMARC1; p=none"',
        "other.edu. A 192.0.2.60",
        '_dmarc.other.edu. TXT "not a dmarc record"',
        # A record at a public suffix is nobody's policy: receivers stop at the organisational domain.
        '_dmarc.ac.uk. TXT "v=DMARC1; p=reject"',
        '_dmarc.example.ac.uk. TXT "v=DMARC1; p=reject; sp=none"',
        "mx.dept.other.ac.uk. A 192.0.2.70",
    ]
)


@pytest.fixture(scope="module")
def dns_server():
    silent = ("dead.example", "45.2.0.192.in-addr.arpa", "dead.dnsbl.example", "_dmarc.quiet.edu")
    with ZoneServer(ZONE, silent=silent, servfail=("broken.example.edu",)) as server:
        yield server


async def domain_check(dns_server, domain: str, check_id: str):
    checks = await domain_checks(domain, resolver=dns_server.address, timeout=SHORT)
    return next(check for check in checks if check.id == check_id)


async def host_check(dns_server, address: str, banner=(), zones=()):
    checks = await host_checks(
        address, list(banner), resolver=dns_server.address, dnsbl_zones=zones, timeout=SHORT
    )
    return checks[0] if not zones else checks[1:]


# ---- MX ------------------------------------------------------------------------------------

MX_CASES = [
    pytest.param(
        "example.edu",
        "mx",
        "pass",
        "example.edu receives mail on mx1.example.edu (preference 10), mx2.example.edu (preference 20).",
        id="mx_lists_hosts_by_preference",
    ),
    pytest.param(
        "alias.example.edu",
        "mx",
        "warn",
        "The MX host mail.example.edu of alias.example.edu is an alias (CNAME) for mx1.example.edu: RFC 2181 "
        "forbids MX records that point at aliases and some senders refuse them; name mx1.example.edu instead.",
        id="mx_pointing_at_a_cname_is_a_warning",
    ),
    pytest.param(
        "literal.example.edu",
        "mx",
        "fail",
        "The MX record of literal.example.edu names the IP address 192.0.2.25 instead of a host name: "
        "RFC 5321 requires a name and most senders will not deliver to it.",
        id="mx_naming_an_ip_address_fails",
    ),
    pytest.param(
        "nullmx.example.edu",
        "mx",
        "info",
        "nullmx.example.edu publishes a null MX (RFC 7505): it accepts no mail.",
        id="null_mx_is_information",
    ),
    pytest.param(
        "halfnull.example.edu",
        "mx",
        "fail",
        "halfnull.example.edu publishes a null MX beside other MX records, which RFC 7505 forbids: "
        "senders may treat the domain as accepting no mail.",
        id="null_mx_beside_other_mx_records_fails",
    ),
    pytest.param(
        "nomx.example.edu",
        "mx",
        "info",
        "nomx.example.edu has no MX record, so senders deliver to its own address (192.0.2.30) as RFC 5321 "
        "allows; publish an MX record to say so explicitly.",
        id="no_mx_falls_back_to_the_domains_address",
    ),
    pytest.param(
        "onebad.example.edu",
        "mx",
        "warn",
        "The MX host gone.example.edu of onebad.example.edu cannot receive mail: "
        "gone.example.edu does not exist (NXDOMAIN).",
        id="one_mx_host_without_address_is_a_warning",
    ),
    pytest.param(
        "allbad.example.edu",
        "mx",
        "fail",
        "None of the MX hosts of allbad.example.edu has an address (gone.example.edu, gone2.example.edu), "
        "so it can receive no mail.",
        id="no_mx_host_with_an_address_fails",
    ),
    pytest.param(
        "nosuch.example.edu",
        "mx",
        "fail",
        "nosuch.example.edu does not exist in DNS (NXDOMAIN), so it can receive no mail.",
        id="mx_of_a_domain_that_does_not_exist_fails",
    ),
    pytest.param(
        "nothing.example.edu",
        "mx",
        "fail",
        "nothing.example.edu has no MX record and no address of its own, so it can receive no mail.",
        id="a_domain_without_mx_or_address_fails",
    ),
    pytest.param(
        "broken.example.edu",
        "mx",
        "error",
        "Could not look up the MX records of broken.example.edu: DNS lookup of broken.example.edu (MX) failed: "
        f"{RESOLVER} answered SERVFAIL.",
        id="servfail_is_an_error_not_a_pass",
    ),
]


async def test_mx_lists_hosts_by_preference_with_their_addresses(dns_server):
    mx = await domain_check(dns_server, "example.edu", "mx")
    assert [(h["preference"], h["name"], h["addresses"]) for h in mx.data["hosts"]] == [
        (10, "mx1.example.edu", ["192.0.2.25", "2001:db8::25"]),
        (20, "mx2.example.edu", ["192.0.2.26"]),
    ]


async def test_mx_pointing_at_a_cname_keeps_the_canonical_name_and_its_addresses(dns_server):
    mx = await domain_check(dns_server, "alias.example.edu", "mx")
    assert mx.data["hosts"][0]["alias_of"] == "mx1.example.edu"
    assert mx.data["hosts"][0]["addresses"] == ["192.0.2.25", "2001:db8::25"]


async def test_mx_naming_an_ip_address_is_marked_as_such(dns_server):
    mx = await domain_check(dns_server, "literal.example.edu", "mx")
    assert mx.data["hosts"][0]["ip_literal"] is True


async def test_null_mx_has_no_hosts(dns_server):
    mx = await domain_check(dns_server, "nullmx.example.edu", "mx")
    assert mx.data["null_mx"] is True
    assert mx.data["hosts"] == []


async def test_no_mx_lists_the_domains_own_address(dns_server):
    mx = await domain_check(dns_server, "nomx.example.edu", "mx")
    assert mx.data["implicit"] is True
    assert mx.data["hosts"][0]["addresses"] == ["192.0.2.30"]


async def test_no_mx_host_with_an_address_keeps_every_finding(dns_server):
    mx = await domain_check(dns_server, "allbad.example.edu", "mx")
    assert [f["key"] for f in mx.data["findings"]] == [
        "host_unresolved",
        "host_unresolved",
        "no_host_resolves",
    ]


async def test_a_domain_with_very_many_mx_hosts_is_looked_up_on_the_most_preferred(dns_server):
    mx = await domain_check(dns_server, "many.example.edu", "mx")
    assert [host["name"] for host in mx.data["hosts"]] == [f"mx{n}.many.example.edu" for n in range(16)]


# ---- An offline machine --------------------------------------------------------------------


async def test_with_the_resolver_down_every_domain_check_is_dns_unavailable():
    with SilentResolver() as silent:
        checks = await domain_checks("example.edu", resolver=silent.address, timeout=SHORT)
    unavailable = f"DNS unavailable: no answer from {silent.address} within 1.5 s"
    assert [(c.id, c.status, c.detail) for c in checks] == [
        ("mx", "error", f"Could not look up the MX records of example.edu: {unavailable}."),
        ("spf", "error", f"Could not look up the SPF record of example.edu: {unavailable}."),
        ("dmarc", "error", f"Could not look up the DMARC record of example.edu: {unavailable}."),
    ]


async def test_with_the_resolver_down_every_host_check_is_dns_unavailable():
    with SilentResolver() as silent:
        checks = await host_checks("192.0.2.25", [], resolver=silent.address, timeout=SHORT)
    unavailable = f"DNS unavailable: no answer from {silent.address} within 1.5 s"
    assert [c.status for c in checks] == ["error"] * (1 + len(DEFAULT_DNSBL_ZONES))
    assert checks[0].detail == f"Could not look up the reverse DNS (PTR) of 192.0.2.25: {unavailable}."
    assert (
        checks[1].detail
        == f"Could not check 192.0.2.25 against Spamhaus ZEN (zen.spamhaus.org): {unavailable}."
    )


async def test_the_system_resolver_is_used_when_none_is_given(monkeypatch):
    """dnspython's default resolver is the system's; here it points at a silent loopback port."""
    with SilentResolver() as silent:
        host, port = silent.address.split(":")
        system = dns.asyncresolver.Resolver(configure=False)
        system.nameservers, system.port = [host], int(port)
        monkeypatch.setattr(dns.asyncresolver, "default_resolver", system)
        [mx, *_] = await domain_checks("example.edu", timeout=SHORT)
    assert mx.detail == (
        f"Could not look up the MX records of example.edu: DNS unavailable: no answer from the system resolver "
        f"({host}) within 1.5 s."
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:5353", ("::1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]", ("::1", 53)),
    ],
)
def test_parse_resolver(text, expected):
    assert parse_resolver(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dns.example.edu", "resolver 'dns.example.edu' is not an IP address with an optional :PORT"),
        ("127.0.0.1:99999", "port 99999 is out of range (1-65535)"),
    ],
)
def test_parse_resolver_says_what_is_wrong(text, message):
    with pytest.raises(ValueError) as raised:
        parse_resolver(text)
    assert str(raised.value) == message


# ---- Reverse DNS -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "banner", "status", "detail"),
    [
        pytest.param(
            "192.0.2.25",
            ["MX1.example.edu."],
            "pass",
            "The reverse DNS of 192.0.2.25 is mx1.example.edu, which resolves back to it and matches the name "
            "the server gives in its greeting.",
            id="ptr_that_resolves_back_and_matches_the_banner_passes",
        ),
        pytest.param(
            "192.0.2.25",
            [],
            "pass",
            "The reverse DNS of 192.0.2.25 is mx1.example.edu, which resolves back to it.",
            id="ptr_without_banner_names_passes_on_forward_confirmation",
        ),
        pytest.param(
            "192.0.2.43",
            [],
            "warn",
            "192.0.2.43 has no reverse DNS (PTR) record: many receivers (large mail providers, Postfix's "
            "reject_unknown_client_hostname) reject or junk mail from addresses without one; ask whoever runs "
            "the address block to add a PTR with the server's name.",
            id="missing_ptr_is_a_warning_that_says_why",
        ),
        pytest.param(
            "192.0.2.40",
            [],
            "warn",
            "The reverse DNS of 192.0.2.40 is unconfirmed.example.edu, which does not resolve back to 192.0.2.40: "
            "receivers that check forward-confirmed reverse DNS reject or junk its mail; add the address to the "
            "name's A/AAAA records or correct the PTR.",
            id="ptr_that_does_not_resolve_back_is_a_warning",
        ),
        pytest.param(
            "192.0.2.41",
            ["host-192-0-2-41.example.net"],
            "warn",
            "The reverse DNS of 192.0.2.41 is host-192-0-2-41.example.net, which looks like an ISP's generic "
            "name for an end-user address: many receivers reject mail from such names; give the address a PTR "
            "with the mail server's own name.",
            id="generic_ptr_built_from_the_address_is_a_warning",
        ),
        pytest.param(
            "192.0.2.42",
            ["dyn42.pool.example.net"],
            "warn",
            "The reverse DNS of 192.0.2.42 is dyn42.pool.example.net, which looks like an ISP's generic name for "
            "an end-user address: many receivers reject mail from such names; give the address a PTR with the "
            "mail server's own name.",
            id="generic_ptr_with_an_isp_word_is_a_warning",
        ),
        pytest.param(
            "192.0.2.25",
            ["smtp.example.edu"],
            "info",
            "The reverse DNS of 192.0.2.25 is mx1.example.edu, but the server calls itself smtp.example.edu in "
            "its greeting or EHLO: use one name for both, as some spam filters check.",
            id="ptr_that_differs_from_the_banner_is_information",
        ),
        pytest.param(
            "192.0.2.45",
            [],
            "error",
            f"Could not look up the reverse DNS (PTR) of 192.0.2.45: DNS unavailable: no answer from {RESOLVER} "
            "within 1.5 s.",
            id="ptr_lookup_without_answer_is_an_error",
        ),
        pytest.param(
            "192.0.2.44",
            [],
            "error",
            "Could not check that mx.dead.example resolves back to 192.0.2.44: DNS unavailable: no answer from "
            f"{RESOLVER} within 1.5 s.",
            id="ptr_whose_name_cannot_be_looked_up_is_an_error",
        ),
    ],
)
async def test_ptr_check(dns_server, address, banner, status, detail):
    check = await host_check(dns_server, address, banner=banner)
    detail = detail.replace(RESOLVER, dns_server.address)
    assert (check.id, check.status, check.detail) == ("ptr", status, detail)


@pytest.mark.parametrize(
    ("address", "banner", "confirmed"),
    [
        ("192.0.2.25", ["MX1.example.edu."], True),
        ("192.0.2.43", [], None),  # no PTR: nothing to confirm
        ("192.0.2.40", [], False),
    ],
)
async def test_ptr_records_whether_it_is_forward_confirmed(dns_server, address, banner, confirmed):
    check = await host_check(dns_server, address, banner=banner)
    assert check.data["forward_confirmed"] is confirmed


async def test_ipv6_ptr_passes(dns_server):
    check = await host_check(dns_server, "2001:db8::25", banner=["mx1.example.edu"])
    assert check.status == "pass"
    assert check.data["ptr"] == ["mx1.example.edu"]


async def test_an_address_with_very_many_ptr_names_is_checked_on_the_first_few(dns_server):
    check = await host_check(dns_server, "192.0.2.46")
    assert check.status == "pass"
    assert len(check.data["ptr"]) == 5
    assert check.data["confirmed_names"] == check.data["ptr"]


async def test_a_non_address_is_an_error_not_an_exception():
    [check] = await host_checks("mx.example.edu", [])
    assert (check.id, check.status) == ("ptr", "error")
    assert check.detail == "Could not check reverse DNS or blocklists: 'mx.example.edu' is not an IP address."


# ---- Blocklists ------------------------------------------------------------------------------

SETTINGS_ZONE = "dnsbl.example.edu=https://dnsbl.example.edu/remove"  # as in RELAYTEST_DNSBL_ZONES


async def test_unlisted_address_passes_every_default_zone(dns_server):
    checks = await host_check(dns_server, "192.0.2.25", zones=DEFAULT_DNSBL_ZONES)
    assert [(c.id, c.status, c.data["zone"]) for c in checks] == [
        ("dnsbl", "pass", z) for z in DEFAULT_DNSBL_ZONES
    ]
    assert checks[0].detail == "192.0.2.25 is not listed on Spamhaus ZEN (zen.spamhaus.org)."
    assert checks[0].data["listed"] is False


@pytest.mark.parametrize(
    ("address", "zone", "status", "detail"),
    [
        pytest.param(
            "192.0.2.66",
            "zen.spamhaus.org",
            "fail",
            "192.0.2.66 is listed on Spamhaus ZEN (zen.spamhaus.org): SBL: a known spam source or spam operation "
            '("https://check.spamhaus.org/sbl/query/SBL123"). Fix the cause, then request removal at '
            "https://check.spamhaus.org/.",
            id="a_listing_names_the_list_the_reason_and_the_removal_page",
        ),
        pytest.param(
            "192.0.2.67",
            "zen.spamhaus.org",
            "fail",
            "192.0.2.67 is listed on Spamhaus ZEN (zen.spamhaus.org): SBL: a known spam source or spam operation; "
            "XBL: an address sending spam from malware or an exploited host. Fix the cause, then request removal "
            "at https://check.spamhaus.org/.",
            id="a_listing_with_several_codes_names_each",
        ),
        pytest.param(
            "192.0.2.66",
            "bl.spamcop.net",
            "fail",
            "192.0.2.66 is listed on SpamCop (bl.spamcop.net): reported as a spam source by SpamCop users. "
            "Fix the cause, then request removal at https://www.spamcop.net/bl.shtml.",
            id="a_listing_without_a_txt_reason",
        ),
        pytest.param(
            "192.0.2.68",
            "zen.spamhaus.org",
            "error",
            "Could not check 192.0.2.68 against Spamhaus ZEN (zen.spamhaus.org): it answered 127.255.255.254, "
            "meaning Spamhaus refuses queries that come through a public or open resolver: set RELAYTEST_RESOLVER "
            "to a resolver of your own.",
            id="spamhaus_refusing_the_query_is_an_error_never_not_listed",
        ),
        pytest.param(
            "192.0.2.69",
            "zen.spamhaus.org",
            "error",
            "Could not check 192.0.2.69 against Spamhaus ZEN (zen.spamhaus.org): it answered 198.51.100.7, which is "
            "not one of its listing codes (a resolver that rewrites missing names answers so).",
            id="an_answer_outside_the_listing_codes_is_an_error",
        ),
        pytest.param(
            "192.0.2.25",
            "dead.dnsbl.example",
            "error",
            "Could not check 192.0.2.25 against dead.dnsbl.example (dead.dnsbl.example): DNS unavailable: no answer "
            f"from {RESOLVER} within 1.5 s.",
            id="a_zone_that_never_answers_is_an_error",
        ),
        pytest.param(
            "192.0.2.66",
            SETTINGS_ZONE,
            "fail",
            "192.0.2.66 is listed on dnsbl.example.edu (dnsbl.example.edu): listed. Fix the cause, then "
            "request removal at https://dnsbl.example.edu/remove.",
            id="a_zone_from_settings_is_read_generically_with_its_removal_page",
        ),
        pytest.param(
            "192.0.2.68",
            SETTINGS_ZONE,
            "error",
            "Could not check 192.0.2.68 against dnsbl.example.edu (dnsbl.example.edu): it answered "
            "127.255.255.1, meaning the list refused the query.",
            id="a_zone_from_settings_refusing_the_query_is_an_error",
        ),
        pytest.param(
            "192.0.2.25",
            "not a zone",
            "error",
            "Could not check 192.0.2.25 against a blocklist: 'not a zone' is not a blocklist zone (a DNS name, "
            "optionally =REMOVAL_URL).",
            id="a_malformed_zone_setting_is_an_error_not_an_exception",
        ),
    ],
)
async def test_dnsbl_check(dns_server, address, zone, status, detail):
    [check] = await host_check(dns_server, address, zones=[zone])
    detail = detail.replace(RESOLVER, dns_server.address)
    assert (check.id, check.status, check.detail) == ("dnsbl", status, detail)


async def test_a_listing_keeps_its_codes_and_the_removal_page(dns_server):
    [check] = await host_check(dns_server, "192.0.2.66", zones=["zen.spamhaus.org"])
    assert check.data["listed"] is True
    assert check.data["codes"] == ["127.0.0.2"]
    assert check.data["removal_url"] == "https://check.spamhaus.org/"


async def test_a_refused_query_leaves_listed_unknown(dns_server):
    [check] = await host_check(dns_server, "192.0.2.68", zones=["zen.spamhaus.org"])
    assert check.data["listed"] is None


async def test_ipv6_is_looked_up_where_the_zone_lists_it(dns_server):
    spamhaus, spamcop = await host_check(
        dns_server, "2001:db8::66", zones=["zen.spamhaus.org", "bl.spamcop.net"]
    )
    assert spamhaus.status == "fail"
    assert spamhaus.detail == (
        "2001:db8::66 is listed on Spamhaus ZEN (zen.spamhaus.org): SBL CSS: a source of snowshoe spam "
        '("snowshoe \ufffdrange"). Fix the cause, then request removal at https://check.spamhaus.org/.'
    )
    assert spamhaus.data["query"].startswith("6.6.0.0.0.0.0.0.")
    assert (spamcop.status, spamcop.detail) == (
        "info",
        "SpamCop (bl.spamcop.net) does not list IPv6 addresses, so 2001:db8::66 was not checked against it.",
    )


def test_a_known_zone_keeps_its_reading_with_another_removal_page():
    entry = blocklist("ZEN.spamhaus.org.=https://removal.example.edu/")
    assert entry == Blocklist(
        **{**KNOWN_BLOCKLISTS["zen.spamhaus.org"].__dict__, "removal_url": "https://removal.example.edu/"}
    )


# ---- SPF --------------------------------------------------------------------------------------

SPF_CASES = [
    pytest.param(
        "example.edu",
        "spf",
        "pass",
        "example.edu publishes a valid SPF record: "
        "v=spf1 mx ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.example.org ~all",
        id="valid_spf_passes",
    ),
    pytest.param(
        "nomx.example.edu",
        "spf",
        "warn",
        "nomx.example.edu publishes no SPF record: receivers cannot tell its own mail from forgeries and many "
        'junk mail without SPF; publish one such as "v=spf1 mx -all".',
        id="missing_spf_is_a_warning",
    ),
    pytest.param(
        "two.example.edu",
        "spf",
        "fail",
        "two.example.edu publishes 2 SPF records: RFC 7208 makes receivers treat that as an error, as if "
        "there were none; merge them into one.",
        id="two_spf_records_fail",
    ),
    pytest.param(
        "plusall.example.edu",
        "spf",
        "warn",
        'The SPF record of plusall.example.edu ends in "+all", which lets every host on the Internet send '
        'mail as plusall.example.edu; end it in "-all" or "~all".',
        id="spf_allowing_everyone_is_a_warning",
    ),
    pytest.param(
        "nosuch.example.edu",
        "spf",
        "fail",
        "nosuch.example.edu does not exist in DNS (NXDOMAIN), so it has no SPF record.",
        id="spf_of_a_domain_that_does_not_exist_fails",
    ),
]


async def test_spf_strings_are_joined_without_spaces(dns_server):
    spf = await domain_check(dns_server, "split.example.edu", "spf")
    assert (spf.status, spf.data["records"]) == ("pass", ["v=spf1 ip4:192.0.2.0/24 -all"])


@pytest.mark.parametrize(
    ("domain", "problem"),
    [
        ("badmech.example.edu", "'foo:bar' is not an SPF mechanism"),
        ("badnet.example.edu", "'ip4:192.0.2.0/33' is not a valid IPv4 network"),
        ("badv6.example.edu", "'ip6:192.0.2.1' is not a valid IPv6 network"),
        ("badinclude.example.edu", "'include' is malformed"),
        ("redirect2.example.edu", "the 'redirect' modifier appears more than once"),
    ],
)
async def test_malformed_spf_fails_naming_the_problem(dns_server, domain, problem):
    spf = await domain_check(dns_server, domain, "spf")
    assert (spf.status, spf.detail) == (
        "fail",
        f"The SPF record of {domain} cannot be used: {problem}; RFC 7208 makes receivers treat it as an "
        "error, as if there were none.",
    )


# ---- DMARC ------------------------------------------------------------------------------------

DMARC_CASES = [
    pytest.param(
        "example.edu",
        "dmarc",
        "pass",
        "The DMARC policy of example.edu is p=reject.",
        id="dmarc_policy_passes",
    ),
    pytest.param(
        "dept.example.edu",
        "dmarc",
        "pass",
        "The DMARC policy of dept.example.edu (from the record of example.edu) is p=quarantine.",
        id="a_subdomain_inherits_the_parents_subdomain_policy",
    ),
    pytest.param(
        "none.example.edu",
        "dmarc",
        "info",
        "The DMARC policy of none.example.edu is p=none: receivers only report mail that forges it and "
        "deliver it as usual; move to quarantine or reject once the reports show that all of its own "
        "mail passes.",
        id="dmarc_monitoring_only_is_information",
    ),
    pytest.param(
        "other.edu",
        "dmarc",
        "warn",
        "other.edu publishes no DMARC record (at _dmarc.other.edu): receivers get no policy for mail that "
        'forges it; publish one such as "v=DMARC1; p=quarantine; rua=mailto:...".',
        id="missing_dmarc_is_a_warning",
    ),
    pytest.param(
        "twodmarc.example.edu",
        "dmarc",
        "fail",
        "_dmarc.twodmarc.example.edu has 2 DMARC records: RFC 7489 makes receivers ignore them all; keep one.",
        id="two_dmarc_records_fail",
    ),
    pytest.param(
        "mx.dept.example.ac.uk",
        "dmarc",
        "info",
        "The DMARC policy of mx.dept.example.ac.uk (from the record of example.ac.uk) is p=none: receivers only "
        "report mail that forges it and deliver it as usual; move to quarantine or reject once the reports show "
        "that all of its own mail passes.",
        id="the_organisational_domain_comes_from_the_public_suffix_list",
    ),
    pytest.param(
        "mx.dept.other.ac.uk",
        "dmarc",
        "warn",
        "mx.dept.other.ac.uk publishes no DMARC record (at _dmarc.mx.dept.other.ac.uk): receivers get no policy "
        'for mail that forges it; publish one such as "v=DMARC1; p=quarantine; rua=mailto:...".',
        id="a_record_at_a_public_suffix_is_nobodys_policy",
    ),
    pytest.param(
        "quiet.edu",
        "dmarc",
        "error",
        f"Could not look up the DMARC record of quiet.edu: DNS unavailable: no answer from {RESOLVER} "
        "within 1.5 s.",
        id="dmarc_lookup_without_answer_is_an_error",
    ),
]


async def test_dmarc_names_the_record_it_read(dns_server):
    dmarc = await domain_check(dns_server, "example.edu", "dmarc")
    assert dmarc.data["owner"] == "example.edu"


@pytest.mark.parametrize(
    ("domain", "problem"),
    [
        ("nop.example.edu", "it has no p= tag, the policy itself"),
        ("badp.example.edu", "'p=block' is not a valid value for p"),
        ("badpct.example.edu", "'pct=150' is not a valid value for pct"),
        ("notpair.example.edu", "'strict' is not a tag=value pair"),
        ("twice.example.edu", "the tag 'p' appears more than once"),
    ],
)
async def test_malformed_dmarc_fails_naming_the_problem(dns_server, domain, problem):
    dmarc = await domain_check(dns_server, domain, "dmarc")
    assert (dmarc.status, dmarc.detail) == (
        "fail",
        f"The DMARC record of {domain} cannot be used: {problem}.",
    )


# ---- Every domain check: status and full text --------------------------------------------------


@pytest.mark.parametrize(("domain", "check_id", "status", "detail"), MX_CASES + SPF_CASES + DMARC_CASES)
async def test_domain_check(dns_server, domain, check_id, status, detail):
    check = await domain_check(dns_server, domain, check_id)
    assert (check.status, check.detail) == (status, detail.replace(RESOLVER, dns_server.address))
