"""Where a domain name belongs: its organisational domain by the public suffix list, and the mail
domain a mail host's name suggests."""

from __future__ import annotations

import functools

from publicsuffixlist import PSLFILE, PublicSuffixList, encode_idn


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    """The list that ships inside the package (no download at run time), built on first use.

    The library writes every rule in punycode as well, through Python's slow idna codec (about 60 ms
    of the relaytest command's start-up). Only the few hundred rules with letters outside ASCII need
    it, so they get their punycode spelling here and every rule is read as it is (about 25 ms).
    """
    with open(PSLFILE, encoding="utf-8") as file:
        lines = file.read().splitlines()
    unicode_rules = [
        line.split(" ")[0].lower() for line in lines if not line.isascii() and not line.startswith("//")
    ]
    punycode = [("!" if rule[0] == "!" else "") + encode_idn(rule.lstrip("!")) for rule in unicode_rules]
    return PublicSuffixList(lines + punycode, accept_encoded_idn=False)


def organisational_domain(name: str) -> str | None:
    """The registered domain a name lies in (dept.example.ac.uk -> example.ac.uk, as DMARC's
    organisational domain, RFC 7489 3.2); None for a public suffix itself (ac.uk)."""
    return _public_suffixes().privatesuffix(name.rstrip(".").lower())


def guessed_mail_domain(hostname: str) -> str:
    """The domain a mail host's name suggests it takes mail for: the name without its first label
    (mx.dept.example.edu -> dept.example.edu), but never above the organisational domain: the
    host example.ac.uk keeps its own name, not the public suffix ac.uk."""
    name = hostname.rstrip(".").lower()
    organisational = organisational_domain(name)
    if organisational is None or organisational == name:
        return name
    return name.partition(".")[2]
