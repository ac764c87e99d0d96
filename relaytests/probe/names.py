"""Where a domain name belongs: its organisational domain by the public suffix list, and the mail
domain a mail host's name suggests."""

from __future__ import annotations

from publicsuffixlist import PublicSuffixList

# The list ships inside the package: no download at run time.
_PUBLIC_SUFFIXES = PublicSuffixList()


def organisational_domain(name: str) -> str | None:
    """The registered domain a name lies in (dept.example.ac.uk -> example.ac.uk, as DMARC's
    organisational domain, RFC 7489 3.2); None for a public suffix itself (ac.uk)."""
    return _PUBLIC_SUFFIXES.privatesuffix(name.rstrip(".").lower())


def guessed_mail_domain(hostname: str) -> str:
    """The domain a mail host's name suggests it takes mail for: the name without its first label
    (mx.dept.example.edu -> dept.example.edu), but never above the organisational domain: the
    host example.ac.uk keeps its own name, not the public suffix ac.uk."""
    name = hostname.rstrip(".").lower()
    organisational = organisational_domain(name)
    if organisational is None or organisational == name:
        return name
    return name.partition(".")[2]
