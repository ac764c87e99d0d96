"""Small filters for the pages: durations in words, a verdict's name (from the engine's Verdict), kinds of
checks."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from relaytests.models import TestRun, Verdict
from relaytests.probe.report import VectorResult

register = template.Library()


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
def run_status_label(value: str) -> str:
    """A run's status in words, from the bare value (lists read the column, not the run)."""
    return TestRun.Status(value).label if value in TestRun.Status.values else value


@register.filter
def when(value: datetime | None):
    """<time> with the date, the time and the zone: 2026-11-27 10:00 UTC."""
    if not value:
        return "—"
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}">{} {}</time>', value.isoformat(), f"{local:%Y-%m-%d %H:%M}", local.tzname()
    )


@register.filter
def ago(value: datetime | None) -> str:
    """3 days ago; just now under a minute."""
    if not value:
        return ""
    if timezone.now() - value < timedelta(minutes=1):
        return "just now"
    return f"{timesince(value, depth=1)} ago"


@register.filter
def accepted_count(vectors: list[VectorResult]) -> int:
    return sum(v.outcome == "accepted" for v in vectors)


@register.filter
def reason_words(reason: str) -> str:
    """relay_denied -> relay denied."""
    return reason.replace("_", " ")
