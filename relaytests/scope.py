"""Which targets this portal may test, decided once at registration.

A name is in scope when it ends in one of ``RELAYTEST_SCOPE_DOMAINS``; an address when it lies in
``RELAYTEST_SCOPE_NETWORKS``, or belongs to an in-scope name. Loopback, private and link-local
addresses need ``RELAYTEST_ALLOW_PRIVATE`` or an explicit scope network; addresses that are no
host at all (multicast, unspecified, reserved) are never tested. The target is resolved once here,
and the addresses accepted are the ones every run connects to (no second lookup).
"""

from __future__ import annotations

import ipaddress
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


class OutOfScope(ValueError):
    """The target is valid but this portal may not test it; the message says why, in one line."""


@dataclass(frozen=True)
class ScopedTarget:
    target: str  # normalised: IDNA lower-case name, or the address in its short form
    kind: str  # MailServer.Kind value
    port: int
    addresses: list[str]
    host_names: list[str]  # the names the addresses belong to (MX hosts for a mail domain)


def parse(text: str, *, domain: bool = False) -> tuple[str, str, int]:
    """(normalised target, kind, port) of what a person typed; TargetError says what is wrong."""
    host, port = targets.parse_target(text)
    if not is_ip_address(host):
        return host, "domain" if domain else "host", port
    if domain:
        raise TargetError(f"{host} is an address, not a mail domain")
    return host, "ip", port


def check(target: str, kind: str, port: int) -> ScopedTarget:
    """Resolve the parsed target once and keep it only if every host it names is in scope."""
    if not (settings.RELAYTEST_SCOPE_DOMAINS or settings.RELAYTEST_SCOPE_NETWORKS):
        raise OutOfScope(
            "Nothing is in this portal's scope yet: central IT must set RELAYTEST_SCOPE_DOMAINS "
            "or RELAYTEST_SCOPE_NETWORKS."
        )
    if kind != "ip" and not in_scope_domain(target) and not settings.RELAYTEST_SCOPE_NETWORKS:
        raise OutOfScope(f"{target} is not under {_scope_domains_text()}, the domains this portal may test.")
    resolved = async_to_sync(targets.resolve_target)(
        target, port=port, domain=kind == "domain", resolver=settings.RELAYTEST_RESOLVER, timeout=RESOLVE_TIMEOUT
    )
    if resolved.error or not resolved.hosts:
        raise TargetError(resolved.error or f"{target} has no address to test")
    for host in resolved.hosts:
        refuse_out_of_scope(host.address, None if kind == "ip" else host.name or target)
    return ScopedTarget(
        target=target,
        kind=kind,
        port=port,
        addresses=list(dict.fromkeys(host.address for host in resolved.hosts)),
        host_names=sorted({host.name for host in resolved.hosts if host.name}),
    )


def refuse_out_of_scope(address: str, name: str | None) -> None:
    """Raise OutOfScope unless the address may be tested (as the address of `name`, when given)."""
    ip = ipaddress.ip_address(address)
    label = f"{name} ({address})" if name else address
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


def in_scope_domain(name: str) -> bool:
    name = name.rstrip(".").lower()
    return any(name == suffix or name.endswith("." + suffix) for suffix in settings.RELAYTEST_SCOPE_DOMAINS)


def _in_scope_network(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(ip in ipaddress.ip_network(net) for net in settings.RELAYTEST_SCOPE_NETWORKS)


def _scope_domains_text() -> str:
    return ", ".join(settings.RELAYTEST_SCOPE_DOMAINS) or "no domain"


def _scope_text() -> str:
    networks = ", ".join(settings.RELAYTEST_SCOPE_NETWORKS) or "no network"
    return f"domains: {_scope_domains_text()}; networks: {networks}"
