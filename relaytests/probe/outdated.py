"""The `software-version` check: is the MTA the banner announces outdated, or one that relays by default?

The facts live in software.toml, one row per release range with its source; this module only
compares versions and words the result for the admin.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from relaytests.probe.report import Check, Software

TABLE_FILE = Path(__file__).with_name("software.toml")
CHECK_ID = "software-version"
BANNER_SHOWN = 120  # characters of the banner quoted in the detail; the rest is noise

NUMBERS = re.compile(r"\d+(?:\.\d+)*")


@cache
def table() -> dict[str, Any]:
    return tomllib.loads(TABLE_FILE.read_text())


def version_key(version: str) -> tuple[int, ...] | None:
    """8.12.11 -> (8, 12, 11); "9.0.1FP10" -> (9, 0, 1); None when it holds no number."""
    match = NUMBERS.search(version)
    return tuple(int(part) for part in match.group().split(".")) if match else None


def outdated_check(software: Software, banner: str) -> Check:
    family = table()["family"].get(software.family)
    if family is None:
        return Check(
            CHECK_ID,
            "info",
            "The banner does not name software we know, so its version cannot be checked.",
            {"family": software.family, "seen": software.version},
        )
    seen = version_key(software.version or "")
    if seen is None:
        return _hidden(software, banner, family)
    return _compared(software, seen, family)


def _hidden(software: Software, banner: str, family: dict[str, Any]) -> Check:
    shown = banner.strip()[:BANNER_SHOWN]
    detail = (
        f"The banner hides the version of {family['name']} (\u201c{shown}\u201d). "
        f"The current release is {family['current']}; read yours on the server: {family['version_hint']}."
    )
    return Check(CHECK_ID, "info", _with_note(detail, family), _data(software, family))


def _compared(software: Software, seen: tuple[int, ...], family: dict[str, Any]) -> Check:
    row = next((r for r in family.get("release", []) if seen < _below(r)), None)
    named = f"The banner shows {family['name']} {software.version}"
    if row is None:
        detail = f"{named}; the current release is {family['current']}."
        status = "info" if family.get("note") else "pass"
        return Check(CHECK_ID, status, _with_note(detail, family), _data(software, family))
    detail = f"{named}, which {row['finding']}. The current release is {family['current']}."
    if row["status"] == "warn" and family.get("packaged_by_distributions"):
        detail = f"{detail} {table()['distribution_note']}"
    data = _data(software, family) | {"finding": row["finding"], "source": row["source"]}
    return Check(CHECK_ID, row["status"], _with_note(detail, family), data)


def _below(row: dict[str, Any]) -> tuple[int, ...]:
    """The first version a release row no longer applies to (every row's `below` holds one)."""
    key = version_key(row["below"])
    if key is None:
        raise ValueError(f"software.toml: below = {row['below']!r} holds no version number")
    return key


def _with_note(detail: str, family: dict[str, Any]) -> str:
    return f"{detail} {family['note']}" if family.get("note") else detail


def _data(software: Software, family: dict[str, Any]) -> dict[str, Any]:
    data = {"family": software.family, "seen": software.version, "current": family["current"]}
    data["current_source"] = family["current_source"]
    if family.get("note"):
        data["note_source"] = family["note_source"]
    return data
