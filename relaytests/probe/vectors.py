"""The vector catalogue (vectors.toml) and how a vector becomes the exact words on the wire."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CATALOGUE_FILE = Path(__file__).with_name("vectors.toml")


@dataclass(frozen=True)
class Vector:
    id: str
    tier: str
    mail_from: str
    rcpt_to: str
    explanation: str
    targets: str
    seen_in: str = ""
    helo: str = ""
    session: str = ""
    evidence: str = "canary-final"
    requires: tuple[str, ...] = ()
    refusals: tuple[str, ...] = ()


@dataclass(frozen=True)
class Placeholders:
    """The values a vector's templates are filled with, for one host and one vector."""

    canary_sender: str
    canary_user: str
    canary_domain: str
    target_domain: str
    target_host: str
    target_ip: str
    target_ip_literal: str
    probe_helo: str
    local_user: str = "relaytest"

    def fill(self, template: str) -> str:
        return template.format(CANARY_DOMAIN=self.canary_domain.upper(), **vars(self))


@cache
def _load() -> tuple[str, tuple[Vector, ...], tuple[str, ...]]:
    data = tomllib.loads(CATALOGUE_FILE.read_text())
    vectors = tuple(
        Vector(**{**v, "requires": tuple(v.get("requires", ())), "refusals": tuple(v.get("refusals", ()))})
        for v in data["vector"]
    )
    return data["version"], vectors, tuple(data["run_order"])


def catalogue() -> tuple[Vector, ...]:
    return _load()[1]


def catalogue_version() -> str:
    return _load()[0]


def in_run_order(vectors: tuple[Vector, ...]) -> tuple[Vector, ...]:
    """The vectors tier by tier as the catalogue's run_order says, in catalogue order within a tier."""
    order = _load()[2]
    return tuple(sorted(vectors, key=lambda vector: order.index(vector.tier)))


def by_id() -> dict[str, Vector]:
    return {v.id: v for v in catalogue()}


def select(ids: list[str] | None) -> tuple[Vector, ...]:
    """The vectors to run: all of them, or the named ones in catalogue order."""
    if not ids:
        return catalogue()
    unknown = sorted(set(ids) - by_id().keys())
    if unknown:
        raise ValueError(f"unknown vector id(s): {', '.join(unknown)} (see --list-vectors)")
    return tuple(v for v in catalogue() if v.id in ids)


def ip_literal(address: str) -> str:
    """An address as an RFC 5321 address literal: [192.0.2.1] or [IPv6:2001:db8::1]."""
    return f"[IPv6:{address}]" if ":" in address else f"[{address}]"
