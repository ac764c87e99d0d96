""" "Since last run": what changed between two reports, vector by vector and check by check.

Pure functions of two typed reports (`TestRun.parsed_report`), so the page, the e-mail and the API
say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relaytests.probe.report import HostReport, Report

# A result that is a problem while it stays: shown even when unchanged ("plain: still accepted").
PROBLEM_VECTOR_OUTCOMES = {"accepted", "relayed"}
PROBLEM_CHECK_STATUSES = {"warn", "fail", "error"}


@dataclass(frozen=True)
class Change:
    subject: str  # a vector id or a check's key (`Check.key`)
    was: str | None  # None: not in the previous run
    now: str | None  # None: not in this run
    host: str = ""  # "address:port", or "" for the target's own checks

    @property
    def text(self) -> str:
        if self.was is None:
            return f"{self.subject}: new, {self.now}"
        if self.now is None:
            return f"{self.subject}: not tested this time (was {self.was})"
        if self.was == self.now:
            return f"{self.subject}: still {self.now}"
        return f"{self.subject}: now {self.now} (was {self.was})"


@dataclass
class Comparison:
    verdict_was: str
    verdict_now: str
    changed: list[Change] = field(default_factory=list)
    still_problems: list[Change] = field(default_factory=list)
    unchanged_count: int = 0

    @property
    def verdict_changed(self) -> bool:
        return self.verdict_was != self.verdict_now


def compare_reports(previous: Report, current: Report) -> Comparison:
    comparison = Comparison(previous.verdict, current.verdict)
    _compare_items(comparison, "", _checks(previous), _checks(current), PROBLEM_CHECK_STATUSES)
    previous_hosts, current_hosts = _hosts(previous), _hosts(current)
    for host in sorted(previous_hosts.keys() | current_hosts.keys()):
        before, after = previous_hosts.get(host), current_hosts.get(host)
        _compare_items(comparison, host, _vectors(before), _vectors(after), PROBLEM_VECTOR_OUTCOMES)
        _compare_items(comparison, host, _checks(before), _checks(after), PROBLEM_CHECK_STATUSES)
    return comparison


def _compare_items(
    comparison: Comparison, host: str, before: dict[str, str], after: dict[str, str], problems: set[str]
) -> None:
    """Sort each item into changed / still a problem / quietly unchanged, in the order the later run has them."""
    for subject in list(after) + [s for s in before if s not in after]:
        change = Change(subject, before.get(subject), after.get(subject), host)
        if change.was != change.now:
            comparison.changed.append(change)
        elif change.now in problems:
            comparison.still_problems.append(change)
        else:
            comparison.unchanged_count += 1


def _hosts(report: Report) -> dict[str, HostReport]:
    return {f"{h.address}:{h.port}": h for h in report.hosts}


def _vectors(host: HostReport | None) -> dict[str, str]:
    """Each vector's outcome; an accepted vector whose canary arrived is "relayed", the stronger fact."""
    return {v.id: "relayed" if v.delivered else v.outcome for v in host.vectors} if host else {}


def _checks(section: Report | HostReport | None) -> dict[str, str]:
    """Each check's status, by its key: the target's own checks, or one host's."""
    return {c.key: c.status for c in section.checks} if section else {}
