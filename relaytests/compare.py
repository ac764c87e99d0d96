""" "Since last run": what changed between two reports (relaytest/1 dicts), vector by vector and check by check.

Pure functions of two dicts, so the page, the e-mail and the API say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relaytests.probe.report import check_key

# A result that is a problem while it stays: shown even when unchanged ("plain: still accepted").
PROBLEM_VECTOR_OUTCOMES = {"accepted", "relayed"}
PROBLEM_CHECK_STATUSES = {"warn", "fail", "error"}


@dataclass(frozen=True)
class Change:
    subject: str  # a vector id or a check's key (`check_key`)
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


def compare_reports(previous: dict[str, Any], current: dict[str, Any]) -> Comparison:
    comparison = Comparison(previous.get("verdict", ""), current.get("verdict", ""))
    _compare_items(comparison, "", _checks(previous), _checks(current), PROBLEM_CHECK_STATUSES)
    previous_hosts, current_hosts = _hosts(previous), _hosts(current)
    for host in sorted(previous_hosts.keys() | current_hosts.keys()):
        before, after = previous_hosts.get(host, {}), current_hosts.get(host, {})
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


def _hosts(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{h.get('address')}:{h.get('port')}": h for h in report.get("hosts", [])}


def _vectors(host: dict[str, Any]) -> dict[str, str]:
    """Each vector's outcome; an accepted vector whose canary arrived is "relayed", the stronger fact."""
    return {
        v["id"]: "relayed" if v.get("delivered") else v.get("outcome", "") for v in host.get("vectors", [])
    }


def _checks(section: dict[str, Any]) -> dict[str, str]:
    return {check_key(c): c.get("status", "") for c in section.get("checks", [])}
