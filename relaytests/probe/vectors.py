"""The vector catalogue (vectors.toml) and how a vector becomes the exact words on the wire."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
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
    # Recipients given before rcpt_to in the same transaction (local ones: no test message then).
    rcpt_before: tuple[str, ...] = ()
    data: str = "DATA"  # how the test message goes: DATA, or BDAT (RFC 3030) in one chunk
    provenance: str = ""  # who uses the trick, or the incident it comes from
    base: str = ""  # the vector a sender variant was made from ("" for the catalogue's own)
    variant: str = ""  # that sender variant's id

    @property
    def family(self) -> str:
        """The trick the vector tries: its base for a sender variant, else itself."""
        return self.base or self.id


@dataclass(frozen=True)
class SenderVariant:
    """Another sender for some recipient tricks: each base vector again, as ``<base>-<id>``."""

    id: str
    mail_from: str
    explanation: str
    targets: str
    bases: tuple[str, ...]
    seen_in: str = ""
    provenance: str = ""
    tier: str = "ext"
    refusals: tuple[str, ...] = ()

    def applied_to(self, base: Vector) -> Vector:
        return replace(
            base,
            id=f"{base.id}-{self.id}",
            tier=self.tier,
            mail_from=self.mail_from,
            explanation=f"{base.explanation.rstrip('.')}, {self.explanation}",
            targets=f"{self.targets} The trick itself: {base.targets}",
            seen_in=self.seen_in,
            provenance=self.provenance,
            refusals=tuple(dict.fromkeys(base.refusals + self.refusals)),
            base=base.id,
            variant=self.id,
        )


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


LISTS = ("requires", "refusals", "rcpt_before", "bases")


def _tuples(table: dict) -> dict:
    return {key: tuple(value) if key in LISTS else value for key, value in table.items()}


@cache
def _load() -> tuple[str, tuple[Vector, ...], tuple[str, ...], tuple[SenderVariant, ...]]:
    data = tomllib.loads(CATALOGUE_FILE.read_text())
    own = tuple(Vector(**_tuples(v)) for v in data["vector"])
    variants = tuple(SenderVariant(**_tuples(v)) for v in data.get("sender_variant", ()))
    bases = {v.id: v for v in own}
    made = tuple(variant.applied_to(bases[base]) for variant in variants for base in variant.bases)
    return data["version"], own + made, tuple(data["run_order"]), variants


def catalogue() -> tuple[Vector, ...]:
    return _load()[1]


def catalogue_version() -> str:
    return _load()[0]


def sender_variants() -> tuple[SenderVariant, ...]:
    return _load()[3]


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
