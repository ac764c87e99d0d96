"""Banner and EHLO reply -> the likely MTA family and version.

Banners can be changed by the admin (one public how-to makes Postfix claim to be Microsoft),
so the result is "likely": the banner decides when it names the software, EHLO keywords and
greeting phrases are the fallback. Patterns follow nmap's `match smtp` lines (nmap-service-probes)
and the default banners of each MTA.
"""

from __future__ import annotations

import re

from relaytests.probe.report import Software

VERSION = r"(\d+(?:\.\d+){1,3})"

# (family, pattern in the banner; group 1 is the version when the banner shows one)
BANNER_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(pattern, re.IGNORECASE))
    for family, pattern in (
        ("iis", rf"Microsoft ESMTP MAIL Service, Version: {VERSION}"),
        ("exchange", r"Microsoft ESMTP MAIL Service ready"),
        ("sendmail", rf"\bSendmail(?:\s+{VERSION})?"),
        ("exim", rf"\bExim(?:\s+{VERSION})?"),
        ("postfix", rf"\bPostfix(?:[ /]{VERSION})?"),
        ("opensmtpd", rf"\bOpenSMTPD(?:\s+{VERSION})?"),
        ("domino", r"\b(?:Lotus|IBM|HCL)?\s*Domino(?:\s+Release\s+([\w.]+))?"),
        ("qmail", r"\bqmail\b"),
    )
)

# (family, pattern anywhere in the EHLO reply) used only when the banner names nothing
EHLO_HINTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(pattern, re.IGNORECASE | re.MULTILINE))
    for family, pattern in (
        ("exchange", r"^(?:X-EXPS|XRDST|X-ANONYMOUSTLS)\b"),
        ("exim", r"^(?:PIPE_?CONNECT|X_PIPE_CONNECT)\b"),
        ("sendmail", r"pleased to meet you[\s\S]*^(?:EXPN|VERB)\b"),
        ("opensmtpd", r"pleased to meet you"),
    )
)

FAMILY_NAMES = {
    "postfix": "Postfix",
    "sendmail": "Sendmail",
    "exim": "Exim",
    "opensmtpd": "OpenSMTPD",
    "exchange": "Microsoft Exchange",
    "iis": "Microsoft IIS SMTP",
    "domino": "HCL/IBM/Lotus Domino",
    "qmail": "qmail",
    "unknown": "unknown software",
}


def identify(banner: str, ehlo_reply: str = "") -> Software:
    for family, pattern in BANNER_PATTERNS:
        match = pattern.search(banner)
        if match:
            return Software(family, match.group(1) if match.groups() else None)
    for family, pattern in EHLO_HINTS:
        if pattern.search(ehlo_reply):
            return Software(family, None)
    return Software()


def describe(software: Software) -> str:
    name = FAMILY_NAMES.get(software.family, software.family)
    return f"{name} {software.version}" if software.version else name


HOSTNAME = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?:\.(?!-)[A-Za-z0-9-]{1,63})+$")


def announced_name(text: str) -> str | None:
    """The host name a greeting announces ("220 mx.example.edu ESMTP ..."), if it is a real FQDN.

    nmap takes the first word blindly and ends up with "ESMTP" when the name is hidden;
    we only take a dotted name.
    """
    words = text.split()
    if words and HOSTNAME.match(words[0].rstrip(".")):
        return words[0].rstrip(".").lower()
    return None
