"""The report: the one schema shared by the engine, the CLI, the database and the pages.

The keys listed in docs/report-schema.md ("relaytest/1") must exist and keep their meaning;
everything else here is an addition that older readers may ignore.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from relaytests.probe.vocabulary import EXIT_SECURE, EXIT_WARNINGS, Verdict

SCHEMA = "relaytest/1"

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


@dataclass
class Check:
    id: str
    status: str  # one of CHECK_STATUSES
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


# A check that the engine makes once per something (a blocklist check per zone) is told apart by
# that something in its data: these are the data fields that name it.
CHECK_SUBJECT_FIELDS = ("zone",)


def check_key(check: dict[str, Any]) -> str:
    """A check's identity from one report to the next: its id, and the zone for a blocklist check
    ("dnsbl zen.spamhaus.org"), since every blocklist's check has the id "dnsbl"."""
    data = check.get("data") or {}
    return " ".join([check.get("id", ""), *(str(data[f]) for f in CHECK_SUBJECT_FIELDS if data.get(f))])


@dataclass
class Software:
    family: str = "unknown"
    version: str | None = None


@dataclass
class HostReport:
    address: str
    port: int
    name: str | None = None
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
        data = dict(data)
        data["probe"] = ProbeInfo(**data.get("probe", {}))
        data["hosts"] = [_host_from_dict(h) for h in data.get("hosts", [])]
        data["checks"] = [Check(**_known_fields(Check, c)) for c in data.get("checks", [])]
        return cls(**_known_fields(cls, data))

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


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Drop keys a newer writer added, so an older reader still loads the report."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _host_from_dict(data: dict[str, Any]) -> HostReport:
    data = dict(data)
    data["software"] = Software(**data.get("software", {}))
    data["vectors"] = [VectorResult(**_known_fields(VectorResult, v)) for v in data.get("vectors", [])]
    data["checks"] = [Check(**_known_fields(Check, c)) for c in data.get("checks", [])]
    data["transcript"] = [TranscriptLine(**t) for t in data.get("transcript", [])]
    return HostReport(**_known_fields(HostReport, data))
