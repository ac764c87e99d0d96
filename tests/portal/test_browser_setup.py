"""The Chromium the browser tests drive is Playwright's own set-up, less one WebUI page per window.

Our --disable-features replaces Playwright's (Chromium keeps the last), so tests/portal/browser.py
repeats Playwright's list; after an upgrade of Playwright this says which features it added.
"""

from __future__ import annotations

import re
from pathlib import Path

import playwright

from tests.portal import browser

DRIVER_BUNDLE = Path(playwright.__file__).parent / "driver" / "package" / "lib" / "coreBundle.js"


def playwrights_disabled_features() -> set[str]:
    [listing] = re.findall(r"disabledFeatures = \[(.*?)\]\.filter", DRIVER_BUNDLE.read_text(), re.DOTALL)
    without_comments = re.sub(r"//[^\n]*", "", listing)
    return set(re.findall(r'"([^"]+)"', without_comments))


def test_chromium_runs_with_every_feature_playwright_turns_off_still_off():
    disabled = set(browser.DISABLED_FEATURES)
    assert playwrights_disabled_features() - disabled == set()
    assert {"WebUIOmniboxPopup", "WebUIOmniboxAimPopup"} <= disabled
    [switch] = [arg for arg in browser.CHROMIUM_ARGS if arg.startswith("--disable-features=")]
    assert set(switch.removeprefix("--disable-features=").split(",")) == disabled
