"""How the fake servers read a recipient: plain local mail, an outside address, or an address trick.

A recipient as written after ``RCPT TO:`` is split the way Postfix's resolver sees it: an optional
source route (``@host,@host:``), a local part (quotes kept), and the domain after the *last*
unquoted ``@`` (none when there is no ``@``); ESMTP parameters after ``<...>`` are kept apart.
Each trick is a named predicate, so a fake opens exactly the tricks it is told to and refuses
every other outside address as relay. Senders (``MAIL FROM:``) are read the same way, and a fake
can open its tricks only to one kind of sender (``SENDERS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Address:
    text: str  # the address without its angle brackets, as the server echoes it back
    route: tuple[str, ...]  # source-route hosts, without their '@'
    local_part: str  # quotes included when quoted
    domain: str | None  # None when the address has no unquoted '@'
    params: tuple[str, ...] = ()  # ESMTP parameters after the address (NOTIFY=..., SMTPUTF8)

    @property
    def quoted(self) -> bool:
        return self.local_part.startswith('"')


# Names every MTA studied takes as local besides its own: localhost and the loopback literal.
LOOPBACK_NAMES = frozenset({"localhost", "[127.0.0.1]"})
# The mailboxes a fake has (Postfix's local_recipient_maps: other local parts are unknown users).
MAILBOXES = frozenset({"postmaster", "abuse"})


@dataclass(frozen=True)
class Names:
    """The names a server takes as itself: its host name, its mail domain, its address literal."""

    own: frozenset[str]
    mailboxes: frozenset[str] = MAILBOXES

    def is_self(self, domain: str | None) -> bool:
        return domain is not None and domain.lower() in self.own

    @property
    def literal(self) -> str:
        return next(name for name in self.own if name.startswith("["))


def parse(argument: str) -> Address | None:
    """The recipient in an argument such as ``<a@b>``, ``<a@b> NOTIFY=NEVER`` or ``a@b``; None when empty."""
    text, params = argument.strip(), ()
    if text.startswith("<") and ">" in text:
        closing = text.rfind(">")
        text, params = text[1:closing], tuple(text[closing + 1 :].split())
    if not text:
        return None
    route: tuple[str, ...] = ()
    mailbox = text
    if text.startswith("@") and ":" in text:
        route_text, mailbox = text.split(":", 1)
        route = tuple(host.lstrip("@") for host in route_text.split(","))
    local_part, domain = _split_mailbox(mailbox)
    return Address(text, route, local_part, domain, params)


def parse_sender(argument: str) -> Address | None:
    """The sender after ``MAIL FROM:``: the null sender ``<>`` is an address with no text."""
    text = argument.strip()
    if text == "<>" or text.startswith("<> "):
        return Address("", (), "", None, tuple(text[2:].split()))
    return parse(text)


def _split_mailbox(mailbox: str) -> tuple[str, str | None]:
    if mailbox.startswith('"'):
        closing = mailbox.find('"', 1)
        if closing > 0:
            rest = mailbox[closing + 1 :]
            domain = rest[1:] if rest.startswith("@") else None
            return mailbox[: closing + 1], domain
    local_part, at, domain = mailbox.rpartition("@")
    return (local_part, domain) if at else (mailbox, None)


def _plain_local_part(address: Address) -> bool:
    return not address.quoted and not any(c in address.local_part for c in "%!@")


def ends_at_a_mailbox_name(address: Address, names: Names) -> bool:
    """A plain local part at one of the server's names, or unqualified: local mail, if the user exists."""
    return (
        not address.route
        and _plain_local_part(address)
        and (address.domain is None or names.is_self(address.domain))
    )


def is_local(address: Address, names: Names) -> bool:
    """Mail for one of the server's own mailboxes."""
    return ends_at_a_mailbox_name(address, names) and address.local_part.lower() in names.mailboxes


def _ends_here(address: Address, names: Names) -> bool:
    return not address.route and (address.domain is None or names.is_self(address.domain))


# The address tricks of the catalogue (docs/vectors.md), each as "this address uses the trick against me".
TRICKS: dict[str, Callable[[Address, Names], bool]] = {
    "percent": lambda a, n: (
        not a.route
        and not a.quoted
        and "%" in a.local_part
        and not any(c in a.local_part for c in "!@")
        and n.is_self(a.domain)
    ),
    "srcroute": lambda a, n: bool(a.route) and all(n.is_self(host) for host in a.route),
    "bang": lambda a, n: not a.quoted and "!" in a.local_part and _ends_here(a, n),
    "quoted": lambda a, n: a.quoted and any(c in a.local_part for c in "@%") and _ends_here(a, n),
    "double-at": lambda a, n: not a.quoted and "@" in a.local_part and _ends_here(a, n),
    "iplit": lambda a, n: not a.route and n.is_self(a.domain) and a.domain.startswith("["),
    # Any mailbox at its own address literal, known or not (Metasploit's recipient of its test 4).
    "literal-mailbox": lambda a, n: (
        not a.route and _plain_local_part(a) and a.domain is not None and a.domain == n.literal
    ),
    # A percent hack or source route through localhost or the loopback literal only.
    "loopback": lambda a, n: (
        all(host.lower() in LOOPBACK_NAMES for host in a.route)
        if a.route
        else "%" in a.local_part and not a.quoted and (a.domain or "").lower() in LOOPBACK_NAMES
    ),
    # A recipient with DSN parameters skips the relay check (a front end that parses only "<addr>").
    "dsn": lambda a, n: any(p.upper().startswith(("NOTIFY=", "ORCPT=")) for p in a.params),
    "any": lambda a, n: True,
}
# The tricks that route through the server's own names (what Exim's default ACL refuses outright).
ROUTING_TRICKS = ("percent", "srcroute", "bang", "quoted", "double-at", "iplit", "loopback")

# Kinds of sender a fake can open its tricks to alone (Behaviour.relays_from).
SENDERS: dict[str, Callable[[Address, Names], bool]] = {
    "literal": lambda a, n: not a.route and a.domain is not None and a.domain == n.literal,
    "null": lambda a, n: a.text == "",
    "srcroute": lambda a, n: bool(a.route) and all(n.is_self(host) for host in a.route),
    "smtputf8": lambda a, n: any(p.upper() == "SMTPUTF8" for p in a.params),
}


def accepts(address: Address, names: Names, open_tricks: frozenset[str]) -> bool:
    """Whether a server that relays only through ``open_tricks`` takes this recipient."""
    return is_local(address, names) or any(TRICKS[trick](address, names) for trick in open_tricks)


def uses_a_trick(address: Address, names: Names) -> bool:
    """A routing trick against this server (any of TRICKS but "any"), open or not."""
    return any(TRICKS[trick](address, names) for trick in ROUTING_TRICKS)
