"""Which targets this portal may test, decided once at registration.

A name is in scope when it ends in one of ``RELAYTEST_SCOPE_DOMAINS`` and, when it is an alias
(CNAME), so does its canonical name. An address is in scope when it lies in
``RELAYTEST_SCOPE_NETWORKS``, or belongs to an in-scope name; once scope networks are set, a name's
addresses must lie in them too, unless the name is under one of ``RELAYTEST_SCOPE_NAMES_ANYWHERE``
(mail hosted elsewhere on purpose). Loopback, private and link-local addresses need
``RELAYTEST_ALLOW_PRIVATE`` or an explicit scope network; addresses that are no host at all
(multicast, unspecified, reserved), and IPv6 addresses that carry such an IPv4 address or a
private one inside them, are never tested. A target names one of ``RELAYTEST_ALLOWED_PORTS`` (and
so does every other port its runs test) and has at most ``RELAYTEST_MAX_ADDRESSES`` addresses. The
target is resolved once here, and the addresses accepted are the ones every run connects to (no
second lookup), on each of its ports.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from django.conf import settings

from relaytests.probe import targets
from relaytests.probe.dnschecks.client import is_ip_address
from relaytests.probe.targets import TargetError

RESOLVE_TIMEOUT = 5.0

# Address kinds the probe must not connect to unless the operator says so, and why (shown to the user).
PRIVATE_KINDS = (
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_private", "a private address"),
)
NEVER_KINDS = (
    ("is_unspecified", "the unspecified address"),
    ("is_multicast", "a multicast address"),
    ("is_reserved", "a reserved address"),
)


# IPv6 addresses that carry an IPv4 address (RFC 4291, 3056, 4380, 6052): the traffic ends at that
# IPv4 address, so one that may never be tested must not come in through them. (how, its IPv4 addresses)
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix: no ipaddress property
EMBEDDINGS = (
    ("an IPv4-mapped address (::ffff:0:0/96)", lambda ip: [ip.ipv4_mapped] if ip.ipv4_mapped else []),
    ("a 6to4 address (2002::/16)", lambda ip: [ip.sixtofour] if ip.sixtofour else []),
    ("a Teredo address (2001::/32)", lambda ip: list(ip.teredo or ())),  # its server's and its client's
    ("a NAT64 address (64:ff9b::/96)",
     lambda ip: [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)] if ip in NAT64_PREFIX else []),
)  # fmt: skip


class OutOfScope(ValueError):
    """The target is valid but this portal may not test it; the message says why, in one line."""


@dataclass(frozen=True)
class ScopedTarget:
    target: str  # normalised: IDNA lower-case name, or the address in its short form
    kind: str  # MailServer.Kind value
    port: int
    addresses: list[str]
    host_names: list[str]  # the names the addresses belong to (MX hosts for a mail domain)
    more_ports: list[int] = dataclasses.field(default_factory=list)  # tested in the same runs, never `port`


def parse(text: str, *, domain: bool = False) -> tuple[str, str, int]:
    """(normalised target, kind, port) of what a person typed; TargetError says what is wrong."""
    host, port = targets.parse_target(text)
    if not is_ip_address(host):
        return host, "domain" if domain else "host", port
    if domain:
        raise TargetError(f"{host} is an address, not a mail domain")
    return host, "ip", port


def check(target: str, kind: str, port: int, more_ports: Iterable[int] = ()) -> ScopedTarget:
    """Resolve the parsed target once and keep it only if every host it names is in scope, on `port` and
    on each of `more_ports` (the other ports its runs test)."""
    if not (settings.RELAYTEST_SCOPE_DOMAINS or settings.RELAYTEST_SCOPE_NETWORKS):
        raise OutOfScope(
            "Nothing is in this portal's scope yet: central IT must set RELAYTEST_SCOPE_DOMAINS "
            "or RELAYTEST_SCOPE_NETWORKS."
        )
    more_ports = [p for p in dict.fromkeys(more_ports) if p != port]
    for each in (port, *more_ports):
        refuse_port(each)
    if kind != "ip" and not in_scope_domain(target) and not settings.RELAYTEST_SCOPE_NETWORKS:
        raise OutOfScope(f"{target} is not under {_scope_domains_text()}, the domains this portal may test.")
    resolved = async_to_sync(targets.resolve_target)(
        target,
        ports=(port,),
        domain=kind == "domain",
        resolver=settings.RELAYTEST_RESOLVER,
        timeout=RESOLVE_TIMEOUT,
    )
    if resolved.error or not resolved.hosts:
        raise TargetError(resolved.error or f"{target} has no address to test")
    addresses = list(dict.fromkeys(host.address for host in resolved.hosts))
    refuse_too_many(target, addresses)
    for host in resolved.hosts:
        if kind == "ip":
            refuse_out_of_scope(host.address, None)
        else:
            refuse_out_of_scope(host.address, host.name or target, host.alias_of)
    return ScopedTarget(
        target=target,
        kind=kind,
        port=port,
        addresses=addresses,
        host_names=sorted({host.name for host in resolved.hosts if host.name}),
        more_ports=more_ports,
    )


def refuse_port(port: int) -> None:
    """Raise OutOfScope unless the port is one of RELAYTEST_ALLOWED_PORTS."""
    if port not in settings.RELAYTEST_ALLOWED_PORTS:
        raise OutOfScope(port_refusal(port))


def port_refusal(port: object) -> str:
    """Why a port is not tested, naming the ones that are."""
    return (
        f"Port {port} is not one this portal tests ({', '.join(map(str, settings.RELAYTEST_ALLOWED_PORTS))})."
    )


def refuse_too_many(target: str, addresses: list[str]) -> None:
    """Every address is probed at the same time: a target with more than the limit is refused whole,
    rather than tested in part (which part would be a guess, and a partial verdict a false comfort)."""
    limit = settings.RELAYTEST_MAX_ADDRESSES
    if len(addresses) > limit:
        raise TargetError(
            f"{target} has {len(addresses)} addresses; this portal tests at most {limit} per server. "
            "Register its mail hosts or addresses one by one, or ask central IT to raise the limit."
        )


def refuse_out_of_scope(address: str, name: str | None, alias_of: str | None = None) -> None:
    """Raise OutOfScope unless the address may be tested (as the address of `name`, when given).

    `alias_of` is the canonical name when `name` is an alias (CNAME): it must be in scope as well.
    """
    ip = ipaddress.ip_address(address)
    label = f"{name} ({address})" if name else address
    refuse_hidden_address(ip, label)
    for kind, words in NEVER_KINDS:
        if getattr(ip, kind):
            raise OutOfScope(f"{label} is {words}, which is never tested.")
    if _in_scope_network(ip):
        return
    for kind, words in PRIVATE_KINDS:
        if getattr(ip, kind) and not settings.RELAYTEST_ALLOW_PRIVATE:
            raise OutOfScope(f"{label} is {words}; this portal does not test those unless configured to.")
    if not (name and in_scope_domain(name)):
        raise OutOfScope(f"{label} is outside this portal's scope ({_scope_text()}).")
    if alias_of and not in_scope_domain(alias_of):
        domains = _scope_domains_text()
        raise OutOfScope(f"{name} is an alias (CNAME) of {alias_of}, which is not under {domains}.")
    if settings.RELAYTEST_SCOPE_NETWORKS and not _under(name, settings.RELAYTEST_SCOPE_NAMES_ANYWHERE):
        raise OutOfScope(
            f"{label} is outside the scope networks ({', '.join(settings.RELAYTEST_SCOPE_NETWORKS)}), "
            "where the addresses of names in scope must lie."
        )


def refuse_hidden_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, label: str) -> None:
    """An IPv6 address carrying an IPv4 address that is no public host is refused, whatever the settings."""
    if ip.version != 6:
        return
    for how, carried in EMBEDDINGS:
        for inner in carried(ip):
            words = next((w for kind, w in NEVER_KINDS + PRIVATE_KINDS if getattr(inner, kind)), None)
            if words:
                why = f"{label} is {how} embedding {inner}, {words}"
                raise OutOfScope(f"{why}; such addresses are never tested.")


def in_scope_domain(name: str) -> bool:
    return _under(name, settings.RELAYTEST_SCOPE_DOMAINS)


def _under(name: str, domains: list[str]) -> bool:
    name = name.rstrip(".").lower()
    return any(name == suffix or name.endswith("." + suffix) for suffix in domains)


def _in_scope_network(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(ip in ipaddress.ip_network(net) for net in settings.RELAYTEST_SCOPE_NETWORKS)


def _scope_domains_text() -> str:
    return ", ".join(settings.RELAYTEST_SCOPE_DOMAINS) or "no domain"


def _scope_text() -> str:
    networks = ", ".join(settings.RELAYTEST_SCOPE_NETWORKS) or "no network"
    return f"domains: {_scope_domains_text()}; networks: {networks}"
