"""Small filters for the pages: durations in words, the words for a run's verdict, kinds of checks."""

from __future__ import annotations

from datetime import timedelta

from django import template

from relaytests.models import Verdict

register = template.Library()

# One sentence per verdict, under its name: what it means for the admin reading the page.
VERDICT_MEANINGS = {
    "open_relay": "A test message relayed through this server reached our canary: anyone can send mail "
    "through it. Fix it now.",
    "accepts_relay": "The server accepted mail for an outside recipient, but no test message arrived "
    "(yet). Treat it as an open relay until a re-test says secure.",
    "inconclusive": "The test could neither prove nor rule out relaying; the reason is given below.",
    "secure": "Every core relay attempt was refused, and no test message arrived.",
}


# Checks about the server as the rest of the Internet sees it (DNS), shown in a section of their own.
DNS_CHECKS = frozenset({"mx", "ptr", "dnsbl", "spf", "dmarc", "addresses"})


@register.filter
def dns_checks(checks: list[dict]) -> list[dict]:
    return [c for c in checks if c["id"] in DNS_CHECKS]


@register.filter
def server_checks(checks: list[dict]) -> list[dict]:
    return [c for c in checks if c["id"] not in DNS_CHECKS]


@register.filter
def duration(value: timedelta | float | None) -> str:
    """2 h 5 min, 3 min 20 s, 4.2 s; a dash when unknown."""
    if value is None or value == "":
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.filter
def verdict_label(value: str) -> str:
    return Verdict(value).label if value in Verdict.values else "No verdict yet"


@register.filter
def verdict_meaning(value: str) -> str:
    return VERDICT_MEANINGS.get(value, "")
