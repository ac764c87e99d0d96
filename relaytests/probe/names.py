"""Where a domain name belongs: its organisational domain by the public suffix list, and the mail
domain a mail host's name suggests."""

from __future__ import annotations

import functools

from publicsuffixlist import PublicSuffixList


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    """The list that ships inside the package (no download at run time), built on first use.

    Its rules stay as the list writes them, in Unicode: spelling them in punycode as well (the
    library's default) costs the idna codec about 50 ms of the relaytest command's start-up, for
    the few names that need it. Those are read in Unicode instead (organisational_domain).
    """
    return PublicSuffixList(accept_encoded_idn=False)


def organisational_domain(name: str) -> str | None:
    """The registered domain a name lies in (dept.example.ac.uk -> example.ac.uk, as DMARC's
    organisational domain, RFC 7489 3.2); None for a public suffix itself (ac.uk)."""
    name = name.rstrip(".").lower()
    found = _public_suffixes().privatesuffix(_unicode(name))
    if found is None:
        return None
    return ".".join(name.split(".")[-(found.count(".") + 1) :])  # its labels as the name spells them


def _unicode(name: str) -> str:
    """A name with punycode labels (xn--) in Unicode, as the list's rules are; others as they are."""
    if "xn--" not in name:
        return name
    try:
        return name.encode("ascii").decode("idna")
    except UnicodeError:  # not valid punycode: no rule is written that way either
        return name


def guessed_mail_domain(hostname: str) -> str:
    """The domain a mail host's name suggests it takes mail for: the name without its first label
    (mx.dept.example.edu -> dept.example.edu), but never above the organisational domain: the
    host example.ac.uk keeps its own name, not the public suffix ac.uk."""
    name = hostname.rstrip(".").lower()
    organisational = organisational_domain(name)
    if organisational is None or organisational == name:
        return name
    return name.partition(".")[2]
