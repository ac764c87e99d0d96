"""Shared by the browser tests: Debian's Chromium through Playwright, and what they measure on a page.

The measures are the figures of issue 10 (a report an admin acts on in a minute): where the first
fix step starts, whether a narrow screen scrolls sideways, how many A4 sheets the page prints on,
and the serious or critical accessibility violations that axe-core finds.
"""

from __future__ import annotations

import io
import json
import os

from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.urls import reverse
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from tests.portal.factories import PASSWORD

CHROMIUM = "/usr/bin/chromium"
# What Playwright turns off itself (chromiumSwitches.ts): a --disable-features of ours replaces its list.
PLAYWRIGHT_DISABLED_FEATURES = (
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable", "LensOverlay", "MediaRouter", "PaintHolding",
    "ThirdPartyStoragePartitioning", "AvoidCorsURLLoaderRestartOnRedirect", "TcpPortRandomizationWin",
    "OptimizationHints", "NetworkTimeServiceQuerying", "AimEnabled", "PreconnectToSearch",
    "msForceBrowserSignIn", "msEdgeUpdateLaunchServicesPreferredVersion",
)  # fmt: skip
# Chromium loads every window's omnibox popup (each Playwright context is a window) as a WebUI page in a
# renderer of its own: about a core-second a context (ten took 15 busy core-seconds, 6 without), for a
# popup no test opens.
DISABLED_FEATURES = (*PLAYWRIGHT_DISABLED_FEATURES, "WebUIOmniboxPopup", "WebUIOmniboxAimPopup")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-features=" + ",".join(DISABLED_FEATURES),
]  # fmt: skip
ARTIFACTS = settings.BASE_DIR / "test-artifacts"
DOCS = settings.BASE_DIR / "docs"
# Set to 1 to write the README's screenshots into docs/ as well (a test run leaves docs/ alone otherwise).
UPDATE_DOCS = os.environ.get("PORTAL_UPDATE_SCREENSHOTS") == "1"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# The first step of "What to do" on a run page (before issue 10: the first guidance panel).
FIRST_FIX_STEP = "[data-fix-step], section.guidance"
SERIOUS = ("serious", "critical")


def sign_in(page: Page, base_url: str, username: str) -> None:
    page.goto(base_url + reverse("login"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My servers")


def first_fix_step_y(page: Page) -> float | None:
    """The distance from the top of the page to the first fix step, in CSS pixels (None: there is none)."""
    return top_of(page, FIRST_FIX_STEP)


def first_snippet_y(page: Page) -> float | None:
    """Where the first configuration snippet of the advice starts: the exact change to make."""
    return top_of(page, ".what-to-do .snippet, .guidance pre.snippet")


def top_of(page: Page, selector: str) -> float | None:
    return page.evaluate(
        """(selector) => {
            const element = document.querySelector(selector);
            return element ? element.getBoundingClientRect().top + window.scrollY : null;
        }""",
        selector,
    )


def page_height(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollHeight")


def scrolls_sideways(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")


def printed_pages(page: Page, name: str = "") -> int:
    """The A4 sheets the page prints on, as Chromium prints it (print styles, closed <details> closed).

    With a `name`, the PDF is kept in test-artifacts/NAME.pdf.
    """
    pdf = page.pdf(format="A4")
    if name:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"{name}.pdf").write_bytes(pdf)
    return len(PdfReader(io.BytesIO(pdf)).pages)


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page, as 'rule: first offending element'."""
    violations = Axe().run(page).response["violations"]
    return [f"{v['id']}: {v['nodes'][0]['target']}" for v in violations if v.get("impact") in SERIOUS]


def screenshot(page: Page, name: str, *, docs_as: str = "", **options) -> None:
    """test-artifacts/NAME; with `docs_as`, also docs/DOCS_AS when PORTAL_UPDATE_SCREENSHOTS=1."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name, **options)
    if docs_as and UPDATE_DOCS:
        page.screenshot(path=DOCS / docs_as, **options)


def record(name: str, figures: dict) -> None:
    """Keep the figures under `name` in test-artifacts/layout.json, for the note of a change."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "layout.json"
    recorded = json.loads(path.read_text()) if path.exists() else {}
    recorded[name] = figures
    path.write_text(json.dumps(recorded, indent=2, sort_keys=True))
