"""Reverse DNS of an address and the `ptr` check: forward-confirmed, not generic, the banner's name."""

from __future__ import annotations

import asyncio
import ipaddress
import re

import dns.reversename

from relaytests.probe.dnschecks.client import Addresses, DnsClient, IPAddress, plain_name
from relaytests.probe.dnschecks.findings import combine, finding
from relaytests.probe.report import Check

MAX_PTR_NAMES = 5  # an address with more PTR names than this is checked on the first few

# Words that ISPs put in the generic names of end-user addresses ("dyn-192-0-2-1.pool.isp.example").
GENERIC_NAME_WORDS = frozenset(
    {
        "dynamic",
        "dyn",
        "dhcp",
        "pool",
        "dsl",
        "adsl",
        "vdsl",
        "xdsl",
        "cable",
        "ppp",
        "pppoe",
        "dialup",
        "dial",
        "client",
        "customer",
        "cust",
        "broadband",
        "residential",
        "subscriber",
    }
)

PTR_FINDINGS = {
    "lookup_failed": ("error", "Could not look up the reverse DNS (PTR) of {address}: {failure}."),
    "missing": (
        "warn",
        "{address} has no reverse DNS (PTR) record: many receivers (large mail "
        "providers, Postfix's reject_unknown_client_hostname) reject or junk mail from "
        "addresses without one; ask whoever runs the address block to add a PTR with the "
        "server's name.",
    ),
    "forward_failed": ("error", "Could not check that {names} resolves back to {address}: {failure}."),
    "not_confirmed": (
        "warn",
        "The reverse DNS of {address} is {names}, which does not resolve back to "
        "{address}: receivers that check forward-confirmed reverse DNS reject or junk "
        "its mail; add the address to the name's A/AAAA records or correct the PTR.",
    ),
    "generic": (
        "warn",
        "The reverse DNS of {address} is {name}, which looks like an ISP's generic name for "
        "an end-user address: many receivers reject mail from such names; give the address "
        "a PTR with the mail server's own name.",
    ),
    "banner_mismatch": (
        "info",
        "The reverse DNS of {address} is {names}, but the server calls itself "
        "{banner} in its greeting or EHLO: use one name for both, as some spam "
        "filters check.",
    ),
    "ok": ("pass", "The reverse DNS of {address} is {names}, which resolves back to it{matching}."),
}


async def ptr_check(address: str, banner_names: list[str], client: DnsClient) -> Check:
    ip = ipaddress.ip_address(address)
    answer = await client.lookup(dns.reversename.from_address(str(ip)).to_text(), "PTR")
    names = [plain_name(r.target.to_text()) for r in answer.records][:MAX_PTR_NAMES]
    forward = await asyncio.gather(*(client.addresses(name) for name in names))
    confirmed = [found.name for found in forward if ip in map(ipaddress.ip_address, found.addresses)]
    banner = sorted({plain_name(name) for name in banner_names if name})
    facts = {"address": str(ip), "names": ", ".join(names), "banner": " / ".join(banner)}
    findings = [
        finding(PTR_FINDINGS, key, **facts, **extra)
        for key, extra in _ptr_findings(ip, answer.failure, forward, confirmed, banner)
    ]
    data = {
        "address": str(ip),
        "ptr": names,
        "confirmed_names": confirmed,
        "banner_names": banner,
        "forward_confirmed": bool(confirmed) if names else None,
    }
    return combine("ptr", findings, data)


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
    return any(tokens[i : i + len(run)] == run for i in range(len(tokens) - len(run) + 1))
