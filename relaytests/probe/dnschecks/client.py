"""DNS lookups that never raise, through one resolver ("ADDRESS[:PORT]") with one timeout.

A resolver that is down or silent, or that answers with an error code (SERVFAIL, REFUSED), gives an
Answer whose `failure` says why; the checks report it as status `error`, never as a `pass`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from relaytests.probe.sanitise import safe_text

DNS_PORT = 53
# One TXT record's text, kept: SPF records past 512 bytes already go against RFC 7208's advice.
MAX_TXT_TEXT = 4096
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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
        return host, parse_port(rest[1:]) if rest else default_port
    if text.count(":") > 1:  # a bare IPv6 address has no room for a port
        return text, default_port
    host, colon, port = text.partition(":")
    return host, parse_port(port) if colon else default_port


def parse_port(text: str) -> int:
    """A port number as a person writes it, 1 to 65535; ValueError with a sentence for them."""
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
            return Answer(nxdomain=True, canonical_name=plain_name(name))
        except dns.resolver.LifetimeTimeout:
            return Answer(
                failure=f"DNS unavailable: no answer from {self.resolver_label} within {self.timeout:g} s"
            )
        except dns.resolver.NoNameservers as exc:
            return Answer(failure=self._refusal(name, rdtype, exc))
        except (dns.exception.DNSException, OSError) as exc:
            return Answer(failure=f"DNS unavailable: {exc}")
        records = tuple(answer.rrset) if answer.rrset is not None else ()
        return Answer(records=records, canonical_name=plain_name(answer.canonical_name.to_text()))

    def _refusal(self, name: str, rdtype: str, exc: dns.resolver.NoNameservers) -> str:
        """The resolver answered, but with an error code (SERVFAIL, REFUSED) instead of data."""
        codes = sorted({str(error[3]) for error in exc.kwargs.get("errors", [])}) or ["no usable answer"]
        return f"DNS lookup of {name} ({rdtype}) failed: {self.resolver_label} answered {', '.join(codes)}"

    async def addresses(self, name: str) -> Addresses:
        """A and AAAA of a name, asked at the same time."""
        ipv4, ipv6 = await asyncio.gather(self.lookup(name, "A"), self.lookup(name, "AAAA"))
        found = tuple(r.address for r in ipv4.records + ipv6.records)
        return Addresses(
            name=plain_name(name),
            addresses=found,
            canonical_name=ipv4.canonical_name or ipv6.canonical_name or plain_name(name),
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


def plain_name(name: str) -> str:
    """A DNS name as people write it: lower case, no trailing dot (and safe: a PTR is anyone's text)."""
    return safe_text(name.rstrip(".").lower())


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def txt_text(record) -> str:
    """One TXT record: its strings joined as RFC 7208 section 3.3 says, decoded and made safe."""
    return safe_text(b"".join(record.strings), MAX_TXT_TEXT)
