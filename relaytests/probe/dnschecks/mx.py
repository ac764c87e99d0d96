"""Where mail for a domain goes (its MX records, or its own address) and the `mx` check."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import dns.name

from relaytests.probe.dnschecks.client import Addresses, DnsClient, is_ip_address, plain_name
from relaytests.probe.dnschecks.findings import combine, finding
from relaytests.probe.report import Check

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
        *(_mx_host(r.preference, plain_name(r.exchange.to_text()), client) for r in real)
    )
    return MailHosts(domain, tuple(hosts), null_mx=null_mx)


async def _mx_host(preference: int, name: str, client: DnsClient) -> MxHost:
    if is_ip_address(name):
        return MxHost(preference, name, addresses=(name,), ip_literal=True)
    found = await client.addresses(name)
    alias_of = found.canonical_name if found.canonical_name != name else None
    return MxHost(
        preference,
        name,
        found.addresses,
        alias_of,
        problem=found.failure or found.problem,
        lookup_failed=bool(found.failure),
    )


MX_FINDINGS = {
    "lookup_failed": ("error", "Could not look up the MX records of {domain}: {failure}."),
    "nxdomain": ("fail", "{domain} does not exist in DNS (NXDOMAIN), so it can receive no mail."),
    "nothing": ("fail", "{domain} has no MX record and no address of its own, so it can receive no mail."),
    "implicit": (
        "info",
        "{domain} has no MX record, so senders deliver to its own address ({addresses}) "
        "as RFC 5321 allows; publish an MX record to say so explicitly.",
    ),
    "null_mx": ("info", "{domain} publishes a null MX (RFC 7505): it accepts no mail."),
    "null_mx_mixed": (
        "fail",
        "{domain} publishes a null MX beside other MX records, which RFC 7505 forbids: "
        "senders may treat the domain as accepting no mail.",
    ),
    "ip_literal": (
        "fail",
        "The MX record of {domain} names the IP address {name} instead of a host name: "
        "RFC 5321 requires a name and most senders will not deliver to it.",
    ),
    "alias": (
        "warn",
        "The MX host {name} of {domain} is an alias (CNAME) for {alias_of}: RFC 2181 "
        "forbids MX records that point at aliases and some senders refuse them; "
        "name {alias_of} instead.",
    ),
    "host_failed": ("error", "Could not look up every address of the MX host {name} of {domain}: {problem}."),
    "host_unresolved": ("warn", "The MX host {name} of {domain} cannot receive mail: {problem}."),
    "no_host_resolves": (
        "fail",
        "None of the MX hosts of {domain} has an address ({names}), so it can receive no mail.",
    ),
    "ok": ("pass", "{domain} receives mail on {hosts}."),
}


def mx_check(mail: MailHosts) -> Check:
    findings = _mx_findings(mail) or [("ok", {"hosts": _mx_summary(mail.mx)})]
    checks = [finding(MX_FINDINGS, key, domain=mail.domain, **facts) for key, facts in findings]
    return combine("mx", checks, _mx_data(mail))


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
    findings: list[tuple[str, dict]] = [("null_mx_mixed", {})] if mail.null_mx else []
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
        {
            "preference": h.preference,
            "name": h.name,
            "addresses": list(h.addresses),
            "alias_of": h.alias_of,
            "ip_literal": h.ip_literal,
            "problem": h.problem,
        }
        for h in mail.mx
    ]
    if mail.implicit:
        hosts = [
            {
                "preference": None,
                "name": mail.domain,
                "addresses": list(mail.implicit.addresses),
                "alias_of": None,
                "ip_literal": False,
                "problem": mail.implicit.problem,
            }
        ]
    return {
        "domain": mail.domain,
        "null_mx": mail.null_mx,
        "implicit": mail.implicit is not None,
        "hosts": hosts,
    }
