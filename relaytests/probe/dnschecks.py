"""DNS facts about a mail server and its domain: MX, reverse DNS, blocklists, SPF and DMARC.

Every lookup is asynchronous (dnspython), bounded by a timeout and never raises: a resolver
that is down, silent or answers SERVFAIL turns into a check with status `error` and the
reason ("DNS unavailable: ..."), never into a `pass`.

Check ids: `mx`, `spf`, `dmarc` (per mail domain) and `ptr`, `dnsbl` (per address). There is
one `dnsbl` check per blocklist zone; its data names the zone, so every blocklist finding
shares one id for the report and the dashboards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from relaytests.probe.report import Check

DNS_PORT = 53

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
    if not text.isdigit():
        raise ValueError(f"port '{text}' is not a number")
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


class DnsClient:
    """One resolver (an "ADDRESS[:PORT]" or None for the system's) and one timeout for every lookup."""

    def __init__(self, resolver: str | None = None, timeout: float = 5.0):
        self.timeout = timeout
        self.resolver_label = resolver or "the system resolver"
        self.problem: str | None = None
        try:
            self._resolver = _make_resolver(resolver, timeout)
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
            return Answer(failure=f"DNS unavailable: no answer from {self.resolver_label} within {self.timeout:g} s")
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
    result = dns.asyncresolver.Resolver(configure=resolver is None)
    if resolver is not None:
        address, port = parse_resolver(resolver)
        result.nameservers = [address]
        result.port = port
    result.timeout = timeout
    result.lifetime = timeout
    return result


def _plain(name: str) -> str:
    """A DNS name as people write it: lower case, no trailing dot."""
    return name.rstrip(".").lower()


@dataclass(frozen=True)
class Addresses:
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
        return f"{self.name} does not exist (NXDOMAIN)" if self.nxdomain else f"{self.name} has no A or AAAA record"


# ---- MX ---------------------------------------------------------------------------------


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
        """(name, address) of every address that receives the domain's mail, most preferred first, once each."""
        named = [(self.domain, a) for a in self.implicit.addresses] if self.implicit else []
        named += [(host.name, a) for host in self.mx for a in host.addresses]
        seen: set[str] = set()
        return [(name, a) for name, a in named if not (a in seen or seen.add(a))]


async def find_mail_hosts(domain: str, client: DnsClient) -> MailHosts:
    answer = await client.lookup(domain, "MX")
    if answer.failure or answer.nxdomain:
        return MailHosts(domain, nxdomain=answer.nxdomain, failure=answer.failure)
    if not answer.records:
        return MailHosts(domain, implicit=await client.addresses(domain))
    records = sorted(answer.records, key=lambda r: (r.preference, r.exchange))
    null_mx = any(r.exchange == dns.name.root for r in records)
    real = [r for r in records if r.exchange != dns.name.root]
    hosts = await asyncio.gather(*(_mx_host(r.preference, _plain(r.exchange.to_text()), client) for r in real))
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
    "alias": ("warn", "The MX host {name} of {domain} is an alias (CNAME) for {alias_of}: RFC 2181 forbids "
                      "MX records that point at aliases and some senders refuse them; name {alias_of} instead."),
    "host_failed": ("error", "Could not look up every address of the MX host {name} of {domain}: {problem}."),
    "host_unresolved": ("warn", "The MX host {name} of {domain} cannot receive mail: {problem}."),
    "no_host_resolves": ("fail", "None of the MX hosts of {domain} has an address ({names}), so it can receive no mail."),
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
    return {"domain": mail.domain, "null_mx": mail.null_mx, "implicit": mail.implicit is not None, "hosts": hosts}


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
