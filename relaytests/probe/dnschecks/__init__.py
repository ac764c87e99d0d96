"""DNS facts about a mail server and its domain: MX, reverse DNS, blocklists, SPF and DMARC.

Every lookup is asynchronous (dnspython), bounded by a timeout and never raises: a resolver
that is down or silent ("DNS unavailable: ...") or that answers SERVFAIL turns into a check
with status `error` and the reason, never into a `pass`.

Check ids: `mx`, `spf`, `dmarc` (per mail domain) and `ptr`, `dnsbl` (per address). There is
one `dnsbl` check per blocklist zone; its data names the zone, so every blocklist finding
shares one id for the report and the dashboards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver
import dns.reversename

from relaytests.probe.report import Check

DNS_PORT = 53
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Which status speaks for a check when it has several findings: a definite problem first,
# then "could not check", then advice.
STATUS_WEIGHT = {"fail": 4, "error": 3, "warn": 2, "info": 1, "pass": 0}


# ---- "ADDRESS[:PORT]" -------------------------------------------------------------------


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """'host', 'host:port', '[IPv6]', '[IPv6]:port' or a bare IPv6 address -> (host, port).

    Raises ValueError with a sentence for a person when the port is not 1-65535.
    """
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"'{text}' has an unclosed '[' or text after ']'")
        return host, _port(rest[1:], default_port) if rest else default_port
    if text.count(":") > 1:  # a bare IPv6 address has no room for a port
        return text, default_port
    host, colon, port = text.partition(":")
    return host, _port(port, default_port) if colon else default_port


def _port(text: str, default_port: int) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", text):
        raise ValueError(f"port '{text}' is not a number from 1 to 65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range (1-65535)")
    return port


def parse_resolver(text: str) -> tuple[str, int]:
    """A resolver setting, "ADDRESS[:PORT]" (IPv6 as "[ADDRESS]:PORT"): an IP address, port 53 by default."""
    host, port = split_host_port(text, DNS_PORT)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        raise ValueError(f"resolver '{text}' is not an IP address with an optional :PORT") from None


# ---- Lookups that never raise -------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """The answer to one question. `failure` says why there is none (resolver down, SERVFAIL)."""

    records: tuple = ()
    canonical_name: str = ""  # differs from the name asked when that name is an alias (CNAME)
    nxdomain: bool = False
    failure: str | None = None


@dataclass(frozen=True)
class Addresses:
    """The A and AAAA answers for one name, taken together."""

    name: str
    addresses: tuple[str, ...]
    canonical_name: str
    nxdomain: bool
    failure: str | None  # one family's lookup failed; the other may still have answered

    @property
    def problem(self) -> str | None:
        """Why this name gives no address to connect to, or None when it gives one."""
        if self.addresses:
            return None
        if self.failure:
            return self.failure
        if self.nxdomain:
            return f"{self.name} does not exist (NXDOMAIN)"
        return f"{self.name} has no A or AAAA record"


class DnsClient:
    """One resolver (an "ADDRESS[:PORT]" or None for the system's) and one timeout for every lookup."""

    def __init__(self, resolver: str | None = None, timeout: float = 5.0):
        self.timeout = timeout
        self.resolver_label = resolver or "the system resolver"
        self.problem: str | None = None
        try:
            self._resolver = _make_resolver(resolver, timeout)
            if resolver is None:
                self.resolver_label += f" ({', '.join(map(str, self._resolver.nameservers))})"
        except ValueError as exc:
            self.problem = f"DNS unavailable: {exc}"
        except dns.resolver.NoResolverConfiguration:
            self.problem = "DNS unavailable: no resolver is configured (/etc/resolv.conf names none)"

    async def lookup(self, name: str, rdtype: str) -> Answer:
        if self.problem:
            return Answer(failure=self.problem)
        try:
            answer = await self._resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(nxdomain=True, canonical_name=_plain(name))
        except dns.resolver.LifetimeTimeout:
            return Answer(failure=f"DNS unavailable: no answer from {self.resolver_label} "
                                  f"within {self.timeout:g} s")
        except dns.resolver.NoNameservers as exc:
            return Answer(failure=self._refusal(name, rdtype, exc))
        except (dns.exception.DNSException, OSError) as exc:
            return Answer(failure=f"DNS unavailable: {exc}")
        records = tuple(answer.rrset) if answer.rrset is not None else ()
        return Answer(records=records, canonical_name=_plain(answer.canonical_name.to_text()))

    def _refusal(self, name: str, rdtype: str, exc: dns.resolver.NoNameservers) -> str:
        """The resolver answered, but with an error code (SERVFAIL, REFUSED) instead of data."""
        codes = sorted({str(error[3]) for error in exc.kwargs.get("errors", [])}) or ["no usable answer"]
        return f"DNS lookup of {name} ({rdtype}) failed: {self.resolver_label} answered {', '.join(codes)}"

    async def addresses(self, name: str) -> Addresses:
        """A and AAAA of a name, asked at the same time."""
        ipv4, ipv6 = await asyncio.gather(self.lookup(name, "A"), self.lookup(name, "AAAA"))
        found = tuple(r.address for r in ipv4.records + ipv6.records)
        return Addresses(
            name=_plain(name),
            addresses=found,
            canonical_name=ipv4.canonical_name or ipv6.canonical_name or _plain(name),
            nxdomain=ipv4.nxdomain and ipv6.nxdomain,
            failure=ipv4.failure or ipv6.failure,
        )


def _make_resolver(resolver: str | None, timeout: float) -> dns.asyncresolver.Resolver:
    """A resolver of our own, so the timeout set here changes no one else's lookups."""
    result = dns.asyncresolver.Resolver(configure=False)
    if resolver is None:  # the system's, as dnspython read it from /etc/resolv.conf
        system = dns.asyncresolver.get_default_resolver()
        result.nameservers, result.port = system.nameservers, system.port
    else:
        address, port = parse_resolver(resolver)
        result.nameservers, result.port = [address], port
    result.timeout = timeout
    result.lifetime = timeout
    return result


def _plain(name: str) -> str:
    """A DNS name as people write it: lower case, no trailing dot."""
    return name.rstrip(".").lower()


# ---- MX ---------------------------------------------------------------------------------

MAX_MX_HOSTS = 16  # a zone is hostile input: more MX hosts than this are left out, most preferred kept


@dataclass(frozen=True)
class MxHost:
    """One MX record and what its name resolves to."""

    preference: int
    name: str
    addresses: tuple[str, ...] = ()
    alias_of: str | None = None  # the canonical name, when the MX name is an alias (CNAME)
    ip_literal: bool = False  # the MX names an IP address instead of a host
    problem: str | None = None  # why it gives no address, or not every address
    lookup_failed: bool = False  # the problem is the resolver's, not the zone's


@dataclass(frozen=True)
class MailHosts:
    """Where mail for a domain goes (RFC 5321 section 5.1, RFC 7505)."""

    domain: str
    mx: tuple[MxHost, ...] = ()
    null_mx: bool = False
    implicit: Addresses | None = None  # no MX record: the domain's own addresses take mail
    nxdomain: bool = False
    failure: str | None = None  # the MX lookup itself failed

    def receiving_hosts(self) -> list[tuple[str, str]]:
        """(name, address) of every address that takes the domain's mail, most preferred first, once each."""
        named = [(self.domain, a) for a in self.implicit.addresses] if self.implicit else []
        named += [(host.name, a) for host in self.mx for a in host.addresses]
        first_name: dict[str, str] = {}
        for name, address in named:
            first_name.setdefault(address, name)
        return [(name, address) for address, name in first_name.items()]


async def find_mail_hosts(domain: str, client: DnsClient) -> MailHosts:
    answer = await client.lookup(domain, "MX")
    if answer.failure or answer.nxdomain:
        return MailHosts(domain, nxdomain=answer.nxdomain, failure=answer.failure)
    if not answer.records:
        return MailHosts(domain, implicit=await client.addresses(domain))
    records = sorted(answer.records, key=lambda r: (r.preference, r.exchange))
    null_mx = any(r.exchange == dns.name.root for r in records)
    real = [r for r in records if r.exchange != dns.name.root][:MAX_MX_HOSTS]
    hosts = await asyncio.gather(
        *(_mx_host(r.preference, _plain(r.exchange.to_text()), client) for r in real)
    )
    return MailHosts(domain, tuple(hosts), null_mx=null_mx)


async def _mx_host(preference: int, name: str, client: DnsClient) -> MxHost:
    if _is_ip_address(name):
        return MxHost(preference, name, addresses=(name,), ip_literal=True)
    found = await client.addresses(name)
    alias_of = found.canonical_name if found.canonical_name != name else None
    return MxHost(preference, name, found.addresses, alias_of, problem=found.failure or found.problem,
                  lookup_failed=bool(found.failure))


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


MX_FINDINGS = {
    "lookup_failed": ("error", "Could not look up the MX records of {domain}: {failure}."),
    "nxdomain": ("fail", "{domain} does not exist in DNS (NXDOMAIN), so it can receive no mail."),
    "nothing": ("fail", "{domain} has no MX record and no address of its own, so it can receive no mail."),
    "implicit": ("info", "{domain} has no MX record, so senders deliver to its own address ({addresses}) "
                         "as RFC 5321 allows; publish an MX record to say so explicitly."),
    "null_mx": ("info", "{domain} publishes a null MX (RFC 7505): it accepts no mail."),
    "null_mx_mixed": ("fail", "{domain} publishes a null MX beside other MX records, which RFC 7505 forbids: "
                              "senders may treat the domain as accepting no mail."),
    "ip_literal": ("fail", "The MX record of {domain} names the IP address {name} instead of a host name: "
                           "RFC 5321 requires a name and most senders will not deliver to it."),
    "alias": ("warn", "The MX host {name} of {domain} is an alias (CNAME) for {alias_of}: RFC 2181 "
                      "forbids MX records that point at aliases and some senders refuse them; "
                      "name {alias_of} instead."),
    "host_failed": ("error", "Could not look up every address of the MX host {name} of {domain}: {problem}."),
    "host_unresolved": ("warn", "The MX host {name} of {domain} cannot receive mail: {problem}."),
    "no_host_resolves": ("fail", "None of the MX hosts of {domain} has an address ({names}), "
                                 "so it can receive no mail."),
    "ok": ("pass", "{domain} receives mail on {hosts}."),
}


def mx_check(mail: MailHosts) -> Check:
    findings = _mx_findings(mail) or [("ok", {"hosts": _mx_summary(mail.mx)})]
    checks = [_finding(MX_FINDINGS, key, domain=mail.domain, **facts) for key, facts in findings]
    return _combine("mx", checks, _mx_data(mail))


def _mx_findings(mail: MailHosts) -> list[tuple[str, dict]]:
    if mail.failure:
        return [("lookup_failed", {"failure": mail.failure})]
    if mail.nxdomain:
        return [("nxdomain", {})]
    if mail.implicit:
        if mail.implicit.addresses:
            return [("implicit", {"addresses": ", ".join(mail.implicit.addresses)})]
        if mail.implicit.failure:
            return [("lookup_failed", {"failure": mail.implicit.failure})]
        return [("nothing", {})]
    if not mail.mx:
        return [("null_mx", {})]
    findings = [("null_mx_mixed", {})] if mail.null_mx else []
    for host in mail.mx:
        facts = {"name": host.name, "alias_of": host.alias_of, "problem": host.problem}
        if host.ip_literal:
            findings.append(("ip_literal", facts))
        if host.alias_of:
            findings.append(("alias", facts))
        if host.problem:
            findings.append(("host_failed" if host.lookup_failed else "host_unresolved", facts))
    if not any(host.addresses for host in mail.mx) and not any(host.lookup_failed for host in mail.mx):
        findings.append(("no_host_resolves", {"names": ", ".join(host.name for host in mail.mx)}))
    return findings


def _mx_summary(hosts: tuple[MxHost, ...]) -> str:
    return ", ".join(f"{host.name} (preference {host.preference})" for host in hosts)


def _mx_data(mail: MailHosts) -> dict:
    hosts = [
        {"preference": h.preference, "name": h.name, "addresses": list(h.addresses),
         "alias_of": h.alias_of, "ip_literal": h.ip_literal, "problem": h.problem}
        for h in mail.mx
    ]
    if mail.implicit:
        hosts = [{"preference": None, "name": mail.domain, "addresses": list(mail.implicit.addresses),
                  "alias_of": None, "ip_literal": False, "problem": mail.implicit.problem}]
    return {"domain": mail.domain, "null_mx": mail.null_mx, "implicit": mail.implicit is not None,
            "hosts": hosts}


# ---- Findings -> one check ------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    key: str
    status: str
    detail: str


def _finding(texts: dict[str, tuple[str, str]], key: str, **facts) -> Finding:
    status, template = texts[key]
    return Finding(key, status, template.format(**facts))


def _combine(check_id: str, findings: list[Finding], data: dict) -> Check:
    """One check from several findings: the most serious speaks; all are kept in data["findings"]."""
    worst = max(findings, key=lambda f: STATUS_WEIGHT[f.status])
    data["findings"] = [dataclasses.asdict(f) for f in findings]
    return Check(id=check_id, status=worst.status, detail=worst.detail, data=data)


# ---- Reverse DNS ---------------------------------------------------------------------------

MAX_PTR_NAMES = 5  # an address with more PTR names than this is checked on the first few

# Words that ISPs put in the generic names of end-user addresses ("dyn-192-0-2-1.pool.isp.example").
GENERIC_NAME_WORDS = frozenset(
    "dynamic dyn dhcp pool dsl adsl vdsl xdsl cable ppp pppoe dialup dial client customer cust "
    "broadband residential subscriber".split()
)

PTR_FINDINGS = {
    "lookup_failed": ("error", "Could not look up the reverse DNS (PTR) of {address}: {failure}."),
    "missing": ("warn", "{address} has no reverse DNS (PTR) record: many receivers (large mail "
                        "providers, Postfix's reject_unknown_client_hostname) reject or junk mail from "
                        "addresses without one; ask whoever runs the address block to add a PTR with the "
                        "server's name."),
    "forward_failed": ("error", "Could not check that {names} resolves back to {address}: {failure}."),
    "not_confirmed": ("warn", "The reverse DNS of {address} is {names}, which does not resolve back to "
                              "{address}: receivers that check forward-confirmed reverse DNS reject or junk "
                              "its mail; add the address to the name's A/AAAA records or correct the PTR."),
    "generic": ("warn", "The reverse DNS of {address} is {name}, which looks like an ISP's generic name for "
                        "an end-user address: many receivers reject mail from such names; give the address "
                        "a PTR with the mail server's own name."),
    "banner_mismatch": ("info", "The reverse DNS of {address} is {names}, but the server calls itself "
                                "{banner} in its greeting or EHLO: use one name for both, as some spam "
                                "filters check."),
    "ok": ("pass", "The reverse DNS of {address} is {names}, which resolves back to it{matching}."),
}


async def ptr_check(address: str, banner_names: list[str], client: DnsClient) -> Check:
    ip = ipaddress.ip_address(address)
    answer = await client.lookup(dns.reversename.from_address(str(ip)).to_text(), "PTR")
    names = [_plain(r.target.to_text()) for r in answer.records][:MAX_PTR_NAMES]
    forward = await asyncio.gather(*(client.addresses(name) for name in names))
    confirmed = [found.name for found in forward if ip in map(ipaddress.ip_address, found.addresses)]
    banner = sorted({_plain(name) for name in banner_names if name})
    facts = {"address": str(ip), "names": ", ".join(names), "banner": " / ".join(banner)}
    findings = [_finding(PTR_FINDINGS, key, **facts, **extra)
                for key, extra in _ptr_findings(ip, answer.failure, forward, confirmed, banner)]
    data = {"address": str(ip), "ptr": names, "confirmed_names": confirmed, "banner_names": banner,
            "forward_confirmed": bool(confirmed) if names else None}
    return _combine("ptr", findings, data)


def _ptr_findings(
    ip: IPAddress, failure: str | None, forward: list[Addresses], confirmed: list[str], banner: list[str]
) -> list[tuple[str, dict]]:
    if failure:
        return [("lookup_failed", {"failure": failure})]
    if not forward:
        return [("missing", {})]
    if not confirmed:
        forward_failure = next((found.failure for found in forward if found.failure), None)
        if forward_failure:
            return [("forward_failed", {"failure": forward_failure})]
        return [("not_confirmed", {})]
    findings = [("generic", {"name": name}) for name in confirmed if _looks_generic(name, ip)]
    if banner and not set(banner) & set(confirmed):
        findings.append(("banner_mismatch", {}))
    matching = " and matches the name the server gives in its greeting" if banner else ""
    return findings or [("ok", {"matching": matching})]


def _looks_generic(name: str, ip: IPAddress) -> bool:
    """A name built from the address's digits, or with an ISP's word for end-user ranges."""
    tokens = re.split(r"[.\-_]", name)
    if GENERIC_NAME_WORDS & set(tokens):
        return True
    octets = str(ip).split(".") if ip.version == 4 else []
    return bool(octets) and any(_contains_run(tokens, run) for run in (octets, octets[::-1]))


def _contains_run(tokens: list[str], run: list[str]) -> bool:
    return any(tokens[i:i + len(run)] == run for i in range(len(tokens) - len(run) + 1))


# ---- Blocklists (DNSBL) --------------------------------------------------------------------


@dataclass(frozen=True)
class Blocklist:
    """A DNS blocklist zone and how to read its answers."""

    zone: str
    name: str
    removal_url: str = ""
    ipv6: bool = False  # whether the zone lists IPv6 addresses (nibble-reversed queries)
    listed: tuple[str, str] = ("127.0.0.2", "127.0.0.254")  # the answers that mean "listed", inclusive
    meanings: dict[str, str] = dataclasses.field(default_factory=dict)  # listing code -> what it lists
    refusals: dict[str, str] = dataclasses.field(default_factory=dict)  # answer -> why the zone refused

    def reading(self, code: str) -> tuple[str, str]:
        """("listed" | "refused" | "unexpected", what the answer means)."""
        if code in self.refusals or ipaddress.ip_address(code) in REFUSAL_NETWORK:
            return "refused", self.refusals.get(code, "the list refused the query")
        first, last = (ipaddress.ip_address(a) for a in self.listed)
        if first <= ipaddress.ip_address(code) <= last:
            return "listed", self.meanings.get(code, "listed")
        return "unexpected", ("not one of its listing codes (a resolver that rewrites missing names "
                              "answers so)")


# Answers in this network are a zone's own error codes by convention, never a listing.
REFUSAL_NETWORK = ipaddress.ip_network("127.255.255.0/24")

_SPAMHAUS_XBL = "XBL: an address sending spam from malware or an exploited host"
_SPAMHAUS_PBL = "PBL: an end-user address range that should not send mail directly"

KNOWN_BLOCKLISTS = {
    bl.zone: bl
    for bl in (
        Blocklist(
            "zen.spamhaus.org", "Spamhaus ZEN", "https://check.spamhaus.org/", ipv6=True,
            listed=("127.0.0.2", "127.0.0.11"),
            meanings={
                "127.0.0.2": "SBL: a known spam source or spam operation",
                "127.0.0.3": "SBL CSS: a source of snowshoe spam",
                "127.0.0.4": _SPAMHAUS_XBL, "127.0.0.5": _SPAMHAUS_XBL,
                "127.0.0.6": _SPAMHAUS_XBL, "127.0.0.7": _SPAMHAUS_XBL,
                "127.0.0.9": "SBL DROP: a hijacked network or one run by spammers",
                "127.0.0.10": _SPAMHAUS_PBL, "127.0.0.11": _SPAMHAUS_PBL,
            },
            refusals={
                "127.255.255.252": "Spamhaus says the query named the list wrongly",
                "127.255.255.254": "Spamhaus refuses queries that come through a public or open resolver: "
                                   "set RELAYTEST_RESOLVER to a resolver of your own",
                "127.255.255.255": "Spamhaus refuses this resolver for sending too many queries",
            },
        ),
        Blocklist("bl.spamcop.net", "SpamCop", "https://www.spamcop.net/bl.shtml",
                  listed=("127.0.0.2", "127.0.0.2"),
                  meanings={"127.0.0.2": "reported as a spam source by SpamCop users"}),
        Blocklist("b.barracudacentral.org", "Barracuda Reputation Block List",
                  "https://www.barracudacentral.org/rbl/removal-request", listed=("127.0.0.2", "127.0.0.2"),
                  meanings={"127.0.0.2": "an address with a poor sending reputation"}),
        Blocklist("psbl.surriel.com", "Passive Spam Block List (PSBL)", "https://psbl.org/",
                  listed=("127.0.0.2", "127.0.0.2"), meanings={"127.0.0.2": "seen sending to spam traps"}),
    )
}
DEFAULT_DNSBL_ZONES = tuple(KNOWN_BLOCKLISTS)

_ZONE_NAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))+", re.IGNORECASE)
MAX_REASON_LENGTH = 300  # a TXT reason is the zone's text: shown, so bounded


def blocklist(entry: str | Blocklist) -> Blocklist:
    """A setting's word, "ZONE" or "ZONE=REMOVAL_URL", as a Blocklist; unknown zones are read generically."""
    if isinstance(entry, Blocklist):
        return entry
    zone, _, removal_url = entry.strip().partition("=")
    zone = _plain(zone)
    if not _ZONE_NAME.fullmatch(zone):
        raise ValueError(f"'{entry}' is not a blocklist zone (a DNS name, optionally =REMOVAL_URL)")
    known = KNOWN_BLOCKLISTS.get(zone, Blocklist(zone, zone))
    return dataclasses.replace(known, removal_url=removal_url) if removal_url else known


DNSBL_FINDINGS = {
    "bad_zone": ("error", "Could not check {address} against a blocklist: {problem}."),
    "no_ipv6": ("info", "{list} ({zone}) does not list IPv6 addresses, so {address} was not checked "
                        "against it."),
    "lookup_failed": ("error", "Could not check {address} against {list} ({zone}): {failure}."),
    "refused": ("error", "Could not check {address} against {list} ({zone}): it answered {code}, "
                         "meaning {meaning}."),
    "unexpected": ("error", "Could not check {address} against {list} ({zone}): it answered {code}, which is "
                            "{meaning}."),
    "listed": ("fail", "{address} is listed on {list} ({zone}): {meaning}{reason}. Fix the cause, "
                       "then request removal{removal}."),
    "not_listed": ("pass", "{address} is not listed on {list} ({zone})."),
}


async def dnsbl_check(address: str, entry: str | Blocklist, client: DnsClient) -> Check:
    ip = ipaddress.ip_address(address)
    try:
        zone = blocklist(entry)
    except ValueError as exc:
        return _dnsbl("bad_zone", {"zone": str(entry)}, address=str(ip), problem=str(exc))
    facts = {"address": str(ip), "list": zone.name, "zone": zone.zone}
    data = {"zone": zone.zone, "list": zone.name, "address": str(ip), "removal_url": zone.removal_url,
            "listed": None, "codes": []}
    if ip.version == 6 and not zone.ipv6:
        return _dnsbl("no_ipv6", data, **facts)
    data["query"] = query = f"{_reversed(ip)}.{zone.zone}"
    answer = await client.lookup(query, "A")
    data["codes"] = sorted({r.address for r in answer.records}, key=ipaddress.ip_address)
    key, extra = _dnsbl_reading(zone, answer.failure, data["codes"])
    data["listed"] = {"listed": True, "not_listed": False}.get(key)
    if key == "listed":
        data["meaning"] = extra["meaning"]
        data["reason"] = reason = await _listing_reason(query, client)
        extra["reason"] = f' ("{reason}")' if reason else ""
        extra["removal"] = f" at {zone.removal_url}" if zone.removal_url else " from the list's operator"
    return _dnsbl(key, data, **facts, **extra)


def _dnsbl_reading(zone: Blocklist, failure: str | None, codes: list[str]) -> tuple[str, dict]:
    """Which DNSBL finding the answer is; an error code anywhere means the zone could not say."""
    if failure:
        return "lookup_failed", {"failure": failure}
    readings = {code: zone.reading(code) for code in codes}
    for kind in ("refused", "unexpected"):
        for code, (reading, meaning) in readings.items():
            if reading == kind:
                return kind, {"code": code, "meaning": meaning}
    if not codes:
        return "not_listed", {}
    return "listed", {"meaning": "; ".join(dict.fromkeys(meaning for _, meaning in readings.values()))}


def _dnsbl(key: str, data: dict, **facts) -> Check:
    found = _finding(DNSBL_FINDINGS, key, **facts)
    return Check("dnsbl", found.status, found.detail, data)


def _reversed(ip: IPAddress) -> str:
    """The address as a blocklist query: reversed octets, or reversed nibbles for IPv6."""
    name = dns.reversename.from_address(str(ip))
    suffix = dns.reversename.ipv4_reverse_domain if ip.version == 4 else dns.reversename.ipv6_reverse_domain
    return name.relativize(suffix).to_text()


async def _listing_reason(query: str, client: DnsClient) -> str:
    """The zone's TXT record for a listing, bounded; empty when it publishes none."""
    answer = await client.lookup(query, "TXT")
    return " ".join(filter(None, map(_txt, answer.records)))[:MAX_REASON_LENGTH].strip()


def _txt(record) -> str:
    """One TXT record: its strings joined as RFC 7208 section 3.3 says, decoded and made printable."""
    text = b"".join(record.strings).decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() else " " for c in text)


# ---- SPF (RFC 7208) ------------------------------------------------------------------------

_SPF_VERSION = re.compile(r"v=spf1(\s|$)", re.IGNORECASE)
_DOMAIN_SPEC = r"[!-.0-~]+"  # visible characters but "/": macros such as %{d} are allowed
_DUAL_CIDR = r"(/\d{1,2})?(//\d{1,3})?"
# How each mechanism's argument is written (after the name); ip4/ip6 are also checked as networks.
SPF_MECHANISMS = {
    "all": re.compile(r""),
    "include": re.compile(rf":{_DOMAIN_SPEC}"),
    "exists": re.compile(rf":{_DOMAIN_SPEC}"),
    "a": re.compile(rf"(:{_DOMAIN_SPEC})?{_DUAL_CIDR}"),
    "mx": re.compile(rf"(:{_DOMAIN_SPEC})?{_DUAL_CIDR}"),
    "ptr": re.compile(rf"(:{_DOMAIN_SPEC})?"),
    "ip4": re.compile(r":(?P<network>[0-9.]+(/\d{1,2})?)"),
    "ip6": re.compile(r":(?P<network>[0-9a-f:.]+(/\d{1,3})?)", re.IGNORECASE),
}
SPF_NETWORK_VERSION = {"ip4": 4, "ip6": 6}
_SPF_TERM = re.compile(r"(?P<qualifier>[-+~?]?)(?P<mechanism>[a-z][a-z0-9]*)(?P<argument>.*)", re.IGNORECASE)
_SPF_MODIFIER = re.compile(r"(?P<name>[a-z][a-z0-9_.-]*)=(?P<value>.*)", re.IGNORECASE)
SPF_SINGLE_MODIFIERS = ("redirect", "exp")  # RFC 7208 section 6: at most once each

SPF_FINDINGS = {
    "lookup_failed": ("error", "Could not look up the SPF record of {domain}: {failure}."),
    "nxdomain": ("fail", "{domain} does not exist in DNS (NXDOMAIN), so it has no SPF record."),
    "missing": ("warn", "{domain} publishes no SPF record: receivers cannot tell its own mail from forgeries "
                        "and many junk mail without SPF; publish one such as \"v=spf1 mx -all\"."),
    "several": ("fail", "{domain} publishes {count} SPF records: RFC 7208 makes receivers treat that as an "
                        "error, as if there were none; merge them into one."),
    "malformed": ("fail", "The SPF record of {domain} cannot be used: {problem}; RFC 7208 makes receivers "
                          "treat it as an error, as if there were none."),
    "pass_all": ("warn", "The SPF record of {domain} ends in \"+all\", which lets every host on the Internet "
                         "send mail as {domain}; end it in \"-all\" or \"~all\"."),
    "ok": ("pass", "{domain} publishes a valid SPF record: {record}"),
}


async def spf_check(domain: str, client: DnsClient) -> Check:
    answer = await client.lookup(domain, "TXT")
    records = [text for text in map(_txt, answer.records) if _SPF_VERSION.match(text)]
    data = {"domain": domain, "records": records}
    return _combine("spf", [_finding(SPF_FINDINGS, key, domain=domain, **facts)
                            for key, facts in _spf_findings(answer, records)], data)


def _spf_findings(answer: Answer, records: list[str]) -> list[tuple[str, dict]]:
    if answer.failure:
        return [("lookup_failed", {"failure": answer.failure})]
    if answer.nxdomain:
        return [("nxdomain", {})]
    if not records:
        return [("missing", {})]
    if len(records) > 1:
        return [("several", {"count": len(records)})]
    terms = records[0].split()[1:]
    problem = next(filter(None, map(_spf_term_problem, terms)), None) or _spf_repeated_modifier(terms)
    if problem:
        return [("malformed", {"problem": problem})]
    if any(term.lower() in ("all", "+all") for term in terms):
        return [("pass_all", {})]
    return [("ok", {"record": records[0]})]


def _spf_term_problem(term: str) -> str | None:
    """What is wrong with one term of an SPF record, or None."""
    if _SPF_MODIFIER.fullmatch(term):
        return None
    match = _SPF_TERM.fullmatch(term)
    mechanism = match["mechanism"].lower() if match else None
    if mechanism not in SPF_MECHANISMS:
        return f"'{term}' is not an SPF mechanism"
    argument = SPF_MECHANISMS[mechanism].fullmatch(match["argument"])
    if not argument:
        return f"'{term}' is malformed"
    version = SPF_NETWORK_VERSION.get(mechanism)
    if version and not _is_network(argument["network"], version):
        return f"'{term}' is not a valid IPv{version} network"
    return None


def _spf_repeated_modifier(terms: list[str]) -> str | None:
    names = [m["name"].lower() for m in map(_SPF_MODIFIER.fullmatch, terms) if m]
    repeated = next((name for name in SPF_SINGLE_MODIFIERS if names.count(name) > 1), None)
    return f"the '{repeated}' modifier appears more than once" if repeated else None


def _is_network(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_network(text, strict=False).version == version
    except ValueError:
        return False


# ---- DMARC (RFC 7489) ----------------------------------------------------------------------

_DMARC_VERSION = re.compile(r"v\s*=\s*DMARC1\s*(;|$)")
_POLICY = r"none|quarantine|reject"
_URI_LIST = r"[a-z][a-z0-9+.-]*:[^,\s]+(\s*,\s*[a-z][a-z0-9+.-]*:[^,\s]+)*"
# The tags RFC 7489 section 6.3 defines, and how their values are written; other tags are ignored.
DMARC_TAGS = {
    "p": _POLICY, "sp": _POLICY, "adkim": "[rs]", "aspf": "[rs]", "pct": r"100|[1-9]?[0-9]",
    "fo": "[01ds](:[01ds])*", "rf": "[a-z0-9]+(:[a-z0-9]+)*", "ri": "[0-9]+",
    "rua": _URI_LIST, "ruf": _URI_LIST,
}

DMARC_FINDINGS = {
    "lookup_failed": ("error", "Could not look up the DMARC record of {domain}: {failure}."),
    "missing": ("warn", "{domain} publishes no DMARC record (at _dmarc.{domain}): receivers get no "
                        "policy for mail that forges it; publish one such as "
                        "\"v=DMARC1; p=quarantine; rua=mailto:...\"."),
    "several": ("fail", "_dmarc.{owner} has {count} DMARC records: RFC 7489 makes receivers ignore them all; "
                        "keep one."),
    "malformed": ("fail", "The DMARC record of {owner} cannot be used: {problem}."),
    "monitor_only": ("info", "The DMARC policy of {subject} is p=none: receivers only report mail that "
                             "forges it and deliver it as usual; move to quarantine or reject once the "
                             "reports show that all of its own mail passes."),
    "ok": ("pass", "The DMARC policy of {subject} is p={policy}."),
}


async def dmarc_check(domain: str, client: DnsClient) -> Check:
    """The domain's DMARC record, or its parent's: a policy published higher up covers subdomains.

    Walking up to the last two labels stands in for the organisational domain of RFC 7489
    (which needs the Public Suffix List); it is exact for names under a two-label domain.
    """
    owners = _dmarc_owners(domain)
    answers = await asyncio.gather(*(client.lookup(f"_dmarc.{owner}", "TXT") for owner in owners))
    data = {"domain": domain}
    return _combine("dmarc", [_finding(DMARC_FINDINGS, key, domain=domain, **facts)
                              for key, facts in _dmarc_findings(domain, owners, answers, data)], data)


def _dmarc_owners(domain: str) -> list[str]:
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))]


def _dmarc_findings(
    domain: str, owners: list[str], answers: list[Answer], data: dict
) -> list[tuple[str, dict]]:
    for owner, answer in zip(owners, answers):
        if answer.failure:
            return [("lookup_failed", {"failure": answer.failure})]
        records = [text for text in map(_txt, answer.records) if _DMARC_VERSION.match(text)]
        if records:
            data.update(owner=owner, records=records)
            return [_dmarc_record_finding(domain, owner, records)]
    return [("missing", {})]


def _dmarc_record_finding(domain: str, owner: str, records: list[str]) -> tuple[str, dict]:
    if len(records) > 1:
        return "several", {"owner": owner, "count": len(records)}
    tags, problem = _dmarc_tags(records[0])
    if problem:
        return "malformed", {"owner": owner, "problem": problem}
    subject = domain if owner == domain else f"{domain} (from the record of {owner})"
    policy = tags["p"].lower() if owner == domain else tags.get("sp", tags["p"]).lower()
    return ("monitor_only" if policy == "none" else "ok"), {"subject": subject, "policy": policy}


def _dmarc_tags(record: str) -> tuple[dict[str, str], str | None]:
    """The tags of a DMARC record, and what is wrong with it (None when it is usable)."""
    tags: dict[str, str] = {}
    for part in filter(None, (part.strip() for part in record.split(";")[1:])):
        name, equals, value = (piece.strip() for piece in part.partition("="))
        name = name.lower()
        if not equals:
            return tags, f"'{part}' is not a tag=value pair"
        if name in tags:
            return tags, f"the tag '{name}' appears more than once"
        if name in DMARC_TAGS and not re.fullmatch(DMARC_TAGS[name], value, re.IGNORECASE):
            return tags, f"'{name}={value}' is not a valid value for {name}"
        tags[name] = value
    if "p" not in tags:
        return tags, "it has no p= tag, the policy itself"
    return tags, None


# ---- What the suite calls ------------------------------------------------------------------


async def host_checks(
    address: str, banner_names: list[str], *, resolver: str | None = None,
    dnsbl_zones: Iterable[str | Blocklist] = DEFAULT_DNSBL_ZONES, timeout: float = 5.0,
) -> list[Check]:
    """Reverse DNS and one `dnsbl` check per blocklist zone for one address, all at once.

    `dnsbl_zones` holds zone names ("zone" or "zone=removal URL", as in RELAYTEST_DNSBL_ZONES)
    or Blocklist entries. `banner_names` are the names the server gave in its greeting and EHLO.
    """
    if not _is_ip_address(address):
        detail = f"Could not check reverse DNS or blocklists: '{address}' is not an IP address."
        return [Check("ptr", "error", detail, {"address": address})]
    client = DnsClient(resolver, timeout)
    checks = await asyncio.gather(
        ptr_check(address, banner_names, client),
        *(dnsbl_check(address, zone, client) for zone in dnsbl_zones),
    )
    return list(checks)


async def domain_checks(domain: str, *, resolver: str | None = None, timeout: float = 5.0) -> list[Check]:
    """MX, SPF and DMARC of a mail domain, all at once."""
    client = DnsClient(resolver, timeout)
    mail, *policy = await asyncio.gather(find_mail_hosts(domain, client), spf_check(domain, client),
                                         dmarc_check(domain, client))
    return [mx_check(mail), *policy]
