"""The report: the one schema shared by the engine, the CLI, the database and the pages.

The keys listed in docs/report-schema.md ("relaytest/1") must exist and keep their meaning;
everything else here is an addition that older readers may ignore.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from relaytests.probe.vocabulary import EXIT_SECURE, EXIT_WARNINGS, Verdict

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SCHEMA = "relaytest/1"
DEFAULT_VANTAGE = "outside"
T = TypeVar("T", bound="DataclassInstance")

OUTCOMES = ("accepted", "rejected", "deferred", "failed")
CHECK_STATUSES = ("pass", "info", "warn", "fail", "error")


@dataclass
class TranscriptLine:
    dir: str  # "C" (probe to server) or "S" (server to probe)
    line: str
    t: float  # seconds since the run started
    conn: int = 1  # which connection to the host (1, 2, ...): the probe reconnects between vectors


@dataclass
class VectorResult:
    id: str
    helo: str
    mail_from: str  # exactly as written after "MAIL FROM:"
    rcpt_to: str  # exactly as written after "RCPT TO:"
    outcome: str  # one of OUTCOMES
    reason: str
    code: int | None = None
    reply: str = ""  # the deciding reply's first line as the server wrote it, code included
    delivered: bool | None = None
    step: str = "rcpt"  # the step whose reply decided the outcome
    tls: bool = False
    evidence: str = "canary-final"  # canary-final | target-final | control
    tier: str = "core"
    token: str = ""  # the canary token carried by the recipient
    attempts: int = 1
    data_code: int | None = None  # the end-of-data reply, when DATA was sent
    data_reply: str = ""
    sent_at: str | None = None  # when the end-of-data reply came (ISO 8601, UTC)
    delivery: dict[str, Any] | None = None  # what the canary receiver recorded, when it arrived


# A check that the engine makes once per something (a blocklist check per zone) is told apart by
# that something in its data: these are the data fields that name it.
CHECK_SUBJECT_FIELDS = ("zone",)


@dataclass
class Check:
    id: str
    status: str  # one of CHECK_STATUSES
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The check's identity from one report to the next: its id, and the zone for a blocklist check
        ("dnsbl zen.spamhaus.org"), since every blocklist's check has the id "dnsbl"."""
        data = self.data or {}
        return " ".join([self.id, *(str(data[f]) for f in CHECK_SUBJECT_FIELDS if data.get(f))])


@dataclass
class Software:
    family: str = "unknown"
    version: str | None = None


@dataclass
class HostReport:
    address: str
    port: int
    name: str | None = None
    implicit_tls: bool = False  # the port speaks TLS from the first byte (RFC 8314, port 465)
    verdict: str = Verdict.INCONCLUSIVE  # a Verdict's value
    reason: str = ""
    banner: str = ""
    software: Software = field(default_factory=Software)
    vectors: list[VectorResult] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    transcript: list[TranscriptLine] = field(default_factory=list)
    connections: int = 0
    round_trips: int = 0
    duration_s: float = 0.0


@dataclass
class ProbeInfo:
    source_address: str | None = None
    helo: str = ""
    inside_internal_networks: bool = False
    canary_domain: str = ""
    # Where the probe tested from (RELAYTEST_VANTAGE, relaytest --vantage-label): outside the
    # organisation's networks by default, or a name such as inside for a probe on the campus.
    vantage: str = DEFAULT_VANTAGE


@dataclass
class Report:
    target: str
    started_at: str
    finished_at: str = ""
    duration_s: float = 0.0
    verdict: str = Verdict.INCONCLUSIVE  # a Verdict's value
    summary: str = ""
    probe: ProbeInfo = field(default_factory=ProbeInfo)
    hosts: list[HostReport] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)  # target-level: MX, SPF, DMARC ...
    error: str = ""  # why nothing could be tested at all (bad name, nothing to resolve)
    # Canary arrivals that prove nothing (suite.settle_deliveries): token, vector_id, host, port, why,
    # received_at, peer_address, received_chain, late.
    unexpected_deliveries: list[dict[str, Any]] = field(default_factory=list)
    run_id: str = ""
    catalogue_version: str = ""
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """A stored report, or what a run has so far (a progress snapshot of its hosts, a dead run's
        partial report, nothing): a key it lacks reads as blank, a key it adds is ignored."""
        return _from_dict(
            cls,
            data,
            probe=lambda probe: _from_dict(ProbeInfo, probe),
            hosts=lambda hosts: [_host_from_dict(h) for h in hosts],
            checks=_checks_from_list,
        )

    def all_checks(self) -> list[Check]:
        return self.checks + [c for host in self.hosts for c in host.checks]

    def exit_code(self) -> int:
        """Monitoring-plugin exit code, as docs/report-schema.md says: the verdict's, and for a secure
        server with a check that warns or fails, warnings."""
        code = Verdict(self.verdict).exit_code
        if code == EXIT_SECURE and any(c.status in ("warn", "fail") for c in self.all_checks()):
            return EXIT_WARNINGS
        return code


def worst_verdict(verdicts: list[str]) -> Verdict:
    """The run's verdict: the worst of its hosts'; no host at all tells nothing."""
    return max(map(Verdict, verdicts), key=lambda verdict: verdict.severity, default=Verdict.INCONCLUSIVE)


# What a required key reads as when a stored report lacks it (a dead run's partial report).
BLANK: dict[type, dict[str, Any]] = {
    Report: {"target": "", "started_at": ""},
    HostReport: {"address": "", "port": 25},
    VectorResult: {"id": "", "helo": "", "mail_from": "", "rcpt_to": "", "outcome": "", "reason": ""},
    Check: {"id": "", "status": "", "detail": ""},
    TranscriptLine: {"dir": "", "line": "", "t": 0.0},
}


def _from_dict(cls: type[T], data: dict[str, Any], **parts: Callable[[Any], Any]) -> T:
    """One dataclass from its dict: keys a newer writer added are dropped (an older reader still loads
    the report), required keys it lacks are blank, and `parts` turn nested values into their classes."""
    names = _field_names(cls)
    known = {**BLANK.get(cls, {}), **{k: v for k, v in data.items() if k in names}}
    return cls(**{k: parts[k](v) if k in parts else v for k, v in known.items()})


@functools.cache
def _field_names(cls: type[DataclassInstance]) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def _checks_from_list(checks: list[dict[str, Any]]) -> list[Check]:
    return [_from_dict(Check, c) for c in checks]


def _host_from_dict(data: dict[str, Any]) -> HostReport:
    return _from_dict(
        HostReport,
        data,
        software=lambda software: _from_dict(Software, software),
        vectors=lambda vectors: [_from_dict(VectorResult, v) for v in vectors],
        checks=_checks_from_list,
        transcript=lambda lines: [_from_dict(TranscriptLine, t) for t in lines],
    )
