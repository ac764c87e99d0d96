"""How the fake servers read a recipient: plain local mail, an outside address, or an address trick.

A recipient as written after ``RCPT TO:`` is split the way Postfix's resolver sees it: an optional
source route (``@host,@host:``), a local part (quotes kept), and the domain after the *last*
unquoted ``@`` (none when there is no ``@``). Each trick is a named predicate, so a fake opens
exactly the tricks it is told to and refuses every other outside address as relay.
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

    @property
    def quoted(self) -> bool:
        return self.local_part.startswith('"')


@dataclass(frozen=True)
class Names:
    """The names a server takes as itself: its host name, its mail domain, its address literal."""

    own: frozenset[str]

    def is_self(self, domain: str | None) -> bool:
        return domain is not None and domain.lower() in self.own


def parse(argument: str) -> Address | None:
    """The recipient in an argument such as ``<a@b>`` or ``a@b``; None when nothing is there."""
    text = argument.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if not text:
        return None
    route: tuple[str, ...] = ()
    mailbox = text
    if text.startswith("@") and ":" in text:
        route_text, mailbox = text.split(":", 1)
        route = tuple(host.lstrip("@") for host in route_text.split(","))
    local_part, domain = _split_mailbox(mailbox)
    return Address(text, route, local_part, domain)


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


def is_local(address: Address, names: Names) -> bool:
    """Mail for the server itself: a plain local part at one of its names, or unqualified."""
    return (
        not address.route
        and _plain_local_part(address)
        and (address.domain is None or names.is_self(address.domain))
    )


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
    "any": lambda a, n: True,
}


def accepts(address: Address, names: Names, open_tricks: frozenset[str]) -> bool:
    """Whether a server that relays only through ``open_tricks`` takes this recipient."""
    return is_local(address, names) or any(TRICKS[trick](address, names) for trick in open_tricks)


def uses_a_trick(address: Address, names: Names) -> bool:
    """A routing trick against this server (any of TRICKS but "any"), open or not."""
    return any(uses(address, names) for trick, uses in TRICKS.items() if trick != "any")
