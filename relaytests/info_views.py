"""The explanatory pages: plain text for a department's staff, open to everyone."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.http import Http404
from django.shortcuts import render

from relaytests.probe.vectors import catalogue


@dataclass(frozen=True)
class InfoPage:
    slug: str
    title: str  # also the link text in the navigation


INFO_PAGES = (
    InfoPage("open-relays", "Spam and open relays"),
    InfoPage("harm", "How an open relay harms us"),
    InfoPage("policy", "Policy"),
    InfoPage("fixing", "How to fix it"),
    InfoPage("testing", "What the test does"),
    InfoPage("contact", "Contact"),
)
PAGES_BY_SLUG = {page.slug: page for page in INFO_PAGES}


def info_page(request, slug: str):
    page = PAGES_BY_SLUG.get(slug)
    if page is None:
        raise Http404("No such page.")
    return render(request, f"info/{slug}.html", {"page": page, **_extra_context(slug)})


def _extra_context(slug: str) -> dict:
    """The testing page describes the probe as this portal runs it: its name, canary and vectors."""
    if slug != "testing":
        return {}
    return {
        "probe_helo": settings.RELAYTEST_PROBE_HELO,
        "probe_source": settings.RELAYTEST_SOURCE_ADDRESS,
        "canary_domain": settings.RELAYTEST_CANARY_DOMAIN,
        "canary_wait_minutes": -(-settings.RELAYTEST_CANARY_WAIT // 60),
        "vectors": [v for v in catalogue() if v.evidence != "control"],
    }
