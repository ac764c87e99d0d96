"""requirements.lock pins exactly what `make` installs, within the ranges requirements*.txt allow."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def lock_pins(text: str) -> dict[str, str]:
    return {canonicalize_name(m[1]): m[2] for line in text.splitlines() if (m := PIN.match(line))}


def ranges(name: str) -> list[Requirement]:
    """The requirements of one file, without its comments and its `-r` includes."""
    lines = (line.split("#")[0].strip() for line in (ROOT / name).read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


LOCKED = lock_pins((ROOT / "requirements.lock").read_text())
RANGES = ranges("requirements.txt") + ranges("requirements-dev.txt")


@pytest.mark.parametrize("requirement", RANGES, ids=str)
def test_each_range_is_pinned_in_the_lock_within_the_range(requirement):
    pinned = LOCKED.get(canonicalize_name(requirement.name))
    assert pinned is not None, f"{requirement.name} is not in requirements.lock: run make lock"
    assert requirement.specifier.contains(pinned, prereleases=True), (
        f"requirements.lock pins {requirement.name}=={pinned}, outside {requirement}: run make lock"
    )


def test_the_environment_is_the_lock():
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    differs = {name: (pin, installed.get(name)) for name, pin in LOCKED.items() if installed.get(name) != pin}
    assert not differs, f"installed packages differ from requirements.lock (pinned, installed): {differs}"


def test_a_lock_line_is_read_as_a_pin():
    text = "django==5.2.9\n    # via -r requirements.txt\npsycopg-binary==3.2.13\n"
    assert lock_pins(text) == {"django": "5.2.9", "psycopg-binary": "3.2.13"}
