"""DNS blocklists (DNSBL): the zones this knows how to read, and one `dnsbl` check per zone."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass

import dns.reversename

from relaytests.probe.dnschecks.client import DnsClient, IPAddress, plain_name, txt_text
from relaytests.probe.dnschecks.findings import finding
from relaytests.probe.report import Check


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
        answer = ipaddress.IPv4Address(code)  # an A record: zones answer in IPv4 for both families
        if code in self.refusals or answer in REFUSAL_NETWORK:
            return "refused", self.refusals.get(code, "the list refused the query")
        first, last = (ipaddress.IPv4Address(a) for a in self.listed)
        if first <= answer <= last:
            return "listed", self.meanings.get(code, "listed")
        return "unexpected", (
            "not one of its listing codes (a resolver that rewrites missing names answers so)"
        )


# Answers in this network are a zone's own error codes by convention, never a listing.
REFUSAL_NETWORK = ipaddress.ip_network("127.255.255.0/24")

_SPAMHAUS_XBL = "XBL: an address sending spam from malware or an exploited host"
_SPAMHAUS_PBL = "PBL: an end-user address range that should not send mail directly"

KNOWN_BLOCKLISTS = {
    bl.zone: bl
    for bl in (
        Blocklist(
            "zen.spamhaus.org",
            "Spamhaus ZEN",
            "https://check.spamhaus.org/",
            ipv6=True,
            listed=("127.0.0.2", "127.0.0.11"),
            meanings={
                "127.0.0.2": "SBL: a known spam source or spam operation",
                "127.0.0.3": "SBL CSS: a source of snowshoe spam",
                "127.0.0.4": _SPAMHAUS_XBL,
                "127.0.0.5": _SPAMHAUS_XBL,
                "127.0.0.6": _SPAMHAUS_XBL,
                "127.0.0.7": _SPAMHAUS_XBL,
                "127.0.0.9": "SBL DROP: a hijacked network or one run by spammers",
                "127.0.0.10": _SPAMHAUS_PBL,
                "127.0.0.11": _SPAMHAUS_PBL,
            },
            refusals={
                "127.255.255.252": "Spamhaus says the query named the list wrongly",
                "127.255.255.254": "Spamhaus refuses queries that come through a public or open resolver: "
                "set RELAYTEST_RESOLVER to a resolver of your own",
                "127.255.255.255": "Spamhaus refuses this resolver for sending too many queries",
            },
        ),
        Blocklist(
            "bl.spamcop.net",
            "SpamCop",
            "https://www.spamcop.net/bl.shtml",
            listed=("127.0.0.2", "127.0.0.2"),
            meanings={"127.0.0.2": "reported as a spam source by SpamCop users"},
        ),
        Blocklist(
            "b.barracudacentral.org",
            "Barracuda Reputation Block List",
            "https://www.barracudacentral.org/rbl/removal-request",
            listed=("127.0.0.2", "127.0.0.2"),
            meanings={"127.0.0.2": "an address with a poor sending reputation"},
        ),
        Blocklist(
            "psbl.surriel.com",
            "Passive Spam Block List (PSBL)",
            "https://psbl.org/",
            listed=("127.0.0.2", "127.0.0.2"),
            meanings={"127.0.0.2": "seen sending to spam traps"},
        ),
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
    zone = plain_name(zone)
    if not _ZONE_NAME.fullmatch(zone):
        raise ValueError(f"'{entry}' is not a blocklist zone (a DNS name, optionally =REMOVAL_URL)")
    known = KNOWN_BLOCKLISTS.get(zone, Blocklist(zone, zone))
    return dataclasses.replace(known, removal_url=removal_url) if removal_url else known


DNSBL_FINDINGS = {
    "bad_zone": ("error", "Could not check {address} against a blocklist: {problem}."),
    "no_ipv6": (
        "info",
        "{list} ({zone}) does not list IPv6 addresses, so {address} was not checked against it.",
    ),
    "lookup_failed": ("error", "Could not check {address} against {list} ({zone}): {failure}."),
    "refused": (
        "error",
        "Could not check {address} against {list} ({zone}): it answered {code}, meaning {meaning}.",
    ),
    "unexpected": (
        "error",
        "Could not check {address} against {list} ({zone}): it answered {code}, which is {meaning}.",
    ),
    "listed": (
        "fail",
        "{address} is listed on {list} ({zone}): {meaning}{reason}. Fix the cause, "
        "then request removal{removal}.",
    ),
    "not_listed": ("pass", "{address} is not listed on {list} ({zone})."),
}


async def dnsbl_check(address: str, entry: str | Blocklist, client: DnsClient) -> Check:
    ip = ipaddress.ip_address(address)
    try:
        zone = blocklist(entry)
    except ValueError as exc:
        return _dnsbl("bad_zone", {"zone": str(entry)}, address=str(ip), problem=str(exc))
    facts = {"address": str(ip), "list": zone.name, "zone": zone.zone}
    data: dict[str, object] = {
        "zone": zone.zone,
        "list": zone.name,
        "address": str(ip),
        "removal_url": zone.removal_url,
        "listed": None,
        "codes": [],
    }
    if ip.version == 6 and not zone.ipv6:
        return _dnsbl("no_ipv6", data, **facts)
    data["query"] = query = f"{_reversed(ip)}.{zone.zone}"
    answer = await client.lookup(query, "A")
    data["codes"] = codes = sorted({r.address for r in answer.records}, key=ipaddress.ip_address)
    key, extra = _dnsbl_reading(zone, answer.failure, codes)
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
    found = finding(DNSBL_FINDINGS, key, **facts)
    return Check("dnsbl", found.status, found.detail, data)


def _reversed(ip: IPAddress) -> str:
    """The address as a blocklist query: reversed octets, or reversed nibbles for IPv6."""
    name = dns.reversename.from_address(str(ip))
    suffix = dns.reversename.ipv4_reverse_domain if ip.version == 4 else dns.reversename.ipv6_reverse_domain
    return name.relativize(suffix).to_text()


async def _listing_reason(query: str, client: DnsClient) -> str:
    """The zone's TXT record for a listing, bounded; empty when it publishes none."""
    answer = await client.lookup(query, "TXT")
    return " ".join(filter(None, map(txt_text, answer.records)))[:MAX_REASON_LENGTH].strip()
