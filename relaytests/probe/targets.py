"""Targets: what a person typed (a host name, an IP literal or a mail domain) -> the hosts to probe.

A host is one (address, port): a name with an IPv4 and an IPv6 address is two hosts, tested
separately, and so is each port of a run that tests several (25, 587, 465). Resolution never raises for a name that does not resolve or a resolver that is
down: the ResolvedTarget carries the reason instead.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import idna

from relaytests.probe.dnschecks import DnsClient, find_mail_hosts, mx_check, split_host_port
from relaytests.probe.report import Check

SMTP_PORT = 25
IMPLICIT_TLS_PORT = 465  # submission over TLS from the first byte (RFC 8314)
MAX_NAME_LENGTH = 253

_LETTERS_DIGITS_HYPHENS = re.compile(r"[a-z0-9-]+", re.IGNORECASE)

# (is this label bad?, why) for every label of a host name, in ASCII (IDNA) form.
LABEL_RULES = (
    (lambda label: len(label) > 63, "label '{label}' is longer than 63 characters"),
    (
        lambda label: label.startswith("-") or label.endswith("-"),
        "label '{label}' starts or ends with a hyphen",
    ),
    (
        lambda label: not _LETTERS_DIGITS_HYPHENS.fullmatch(label),
        "label '{label}' has characters other than letters, digits and hyphens",
    ),
)


@dataclass
class HostTarget:
    """One (address, port) the probe connects to."""

    address: str
    port: int
    name: str | None = None  # the host name it came from: the MX name or the name typed
    mail_domain: str | None = None  # the mail domain, when the target was one
    alias_of: str | None = None  # the canonical name, when `name` is an alias (CNAME) of another


@dataclass
class ResolvedTarget:
    label: str
    hosts: list[HostTarget]
    checks: list[Check] = field(default_factory=list)  # target-level DNS checks (the MX check of a domain)
    error: str | None = None  # why there is nothing to test


class TargetError(ValueError):
    """A target that cannot be parsed; the message is one line for a person."""


def parse_target(text: str, default_port: int = SMTP_PORT) -> tuple[str, int]:
    """'host', 'host:port', an IPv4 address, '[IPv6]' or a bare IPv6, each with an optional :PORT.

    Returns (host, port) with the host as an IP address or a lower-case ASCII (IDNA) name.
    """
    if not text or not text.strip():
        raise TargetError("no target given: type a host name, an IP address or a mail domain")
    if not text.isprintable():
        raise TargetError("the target has a line break or another control character in it")
    try:
        host, port = split_host_port(text, default_port)
    except ValueError as exc:
        raise TargetError(str(exc)) from None
    address = _ip_address(host)
    if address:
        return address, port
    if text.strip().startswith("["):
        raise TargetError(f"'{host}' is not an IP address: brackets are only for IP addresses")
    return host_name(host), port


def parse_listen_address(text: str) -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT where a server of ours listens (the canary receiver); the port is required."""
    host, port = parse_target(text, default_port=0)
    if port == 0:
        raise TargetError("give HOST:PORT")
    return host, port


def _ip_address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def host_name(text: str) -> str:
    """The ASCII form of a host name, or TargetError saying what is wrong with it.

    A name in Unicode is mapped and encoded as IDNA 2008 with UTS 46 (the `idna` package), as browsers
    and current resolvers do: faß.de is xn--fa-hia.de, not IDNA 2003's fass.de.
    """
    name = text[:-1] if text.endswith(".") else text  # a fully qualified name may end in a dot
    if not name:
        raise TargetError("no host name given")
    labels = [_ascii_label(text, label) for label in _uts46_mapped(text, name).split(".")]
    for label in labels:
        for is_bad, why in LABEL_RULES:
            if is_bad(label):
                raise TargetError(f"'{text}' is not a valid host name: {why.format(label=label)}")
    if labels[-1].isdigit():
        raise TargetError(
            f"'{text}' is neither an IP address nor a valid host name: its last label is all digits"
        )
    ascii_name = ".".join(labels).lower()
    if len(ascii_name) > MAX_NAME_LENGTH:
        raise TargetError(f"'{text}' is not a valid host name: longer than {MAX_NAME_LENGTH} characters")
    return ascii_name


def _uts46_mapped(text: str, name: str) -> str:
    """A Unicode name as UTS 46 maps it (case folded, ideographic full stops to dots); ASCII as it is."""
    if name.isascii():
        return name
    try:
        return idna.uts46_remap(name, std3_rules=False, transitional=False)
    except idna.IDNAError as exc:
        raise TargetError(f"'{text}' is not a valid host name: {exc}") from None


def _ascii_label(text: str, label: str) -> str:
    """The label as IDNA 2008 writes it (an A-label for Unicode); an xn-- label must be a valid one."""
    if not label:
        raise TargetError(f"'{text}' is not a valid host name: empty label")
    if label.isascii() and not label.lower().startswith("xn--"):
        return label
    try:
        return idna.alabel(label).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        why = f"label '{label}' is not valid IDNA 2008 ({exc})"
        raise TargetError(f"'{text}' is not a valid host name: {why}") from None


async def resolve_target(
    text: str,
    *,
    ports: tuple[int, ...] = (SMTP_PORT,),
    domain: bool = False,
    resolver: str | None = None,
    timeout: float = 5.0,
) -> ResolvedTarget:
    """The hosts behind a target on each of `ports`: its A and AAAA addresses, or with domain=True its MX
    hosts'. A port typed in the target (host:2525) is the only one tested.

    `resolver` is "ADDRESS[:PORT]" or None for the system resolver. Nothing here raises:
    a bad target, a missing name or an unavailable resolver give `error`.
    """
    try:
        host, typed_port = parse_target(text, default_port=0)  # no port is 0
    except TargetError as exc:
        return ResolvedTarget(label=text.strip(), hosts=[], error=str(exc))
    if host.endswith(".invalid") or host == "invalid":  # RFC 6761 6.4: never exists, so no lookup
        return ResolvedTarget(
            label=host, hosts=[], error=f"{host} cannot exist: .invalid is reserved (RFC 6761)"
        )
    ports = (typed_port,) if typed_port else ports
    client = DnsClient(resolver, timeout)
    if _ip_address(host):
        if domain:
            return ResolvedTarget(label=host, hosts=[], error=f"{host} is an IP address, not a mail domain")
        return ResolvedTarget(label=host, hosts=[HostTarget(host, port) for port in ports])
    if domain:
        return await _resolve_mail_domain(host, ports, client)
    return await _resolve_host_name(host, ports, client)


async def _resolve_host_name(name: str, ports: tuple[int, ...], client: DnsClient) -> ResolvedTarget:
    found = await client.addresses(name)
    alias_of = found.canonical_name if found.canonical_name != name else None
    hosts = [
        HostTarget(address, port, name=name, alias_of=alias_of)
        for address in found.addresses
        for port in ports
    ]
    checks = []
    if hosts and found.failure:  # one family answered, the other did not: say what is left out
        detail = (
            f"Could not look up every address of {name} ({found.failure}), "
            f"so only {', '.join(found.addresses)} is tested."
        )
        checks.append(Check("addresses", "error", detail, {"name": name, "addresses": list(found.addresses)}))
    return ResolvedTarget(label=name, hosts=hosts, checks=checks, error=found.problem)


async def _resolve_mail_domain(domain: str, ports: tuple[int, ...], client: DnsClient) -> ResolvedTarget:
    """RFC 5321 section 5.1: the MX hosts by preference, else the domain's own addresses."""
    mail = await find_mail_hosts(domain, client)
    check = mx_check(mail)
    aliases = {host.name: host.alias_of for host in mail.mx}
    if mail.implicit and mail.implicit.canonical_name != domain:
        aliases[domain] = mail.implicit.canonical_name
    hosts = [
        HostTarget(address, port, name=name, mail_domain=domain, alias_of=aliases.get(name))
        for name, address in mail.receiving_hosts()
        for port in ports
    ]
    error = None if hosts else _nothing_to_test(check)
    return ResolvedTarget(label=domain, hosts=hosts, checks=[check], error=error)


def _nothing_to_test(check: Check) -> str:
    """The MX check's sentence as a reason, without its full stop, like every other `error` here."""
    reason = check.detail.rstrip(".")
    return reason if check.status == "error" else f"{reason}, nothing to test"
