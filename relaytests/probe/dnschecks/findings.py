"""Several findings of one check become one Check: the most serious speaks, all are kept."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from relaytests.probe.report import Check

# Which status speaks for a check when it has several findings: a definite problem first,
# then "could not check", then advice.
STATUS_WEIGHT = {"fail": 4, "error": 3, "warn": 2, "info": 1, "pass": 0}


@dataclass(frozen=True)
class Finding:
    key: str
    status: str
    detail: str


def finding(texts: dict[str, tuple[str, str]], key: str, **facts) -> Finding:
    status, template = texts[key]
    return Finding(key, status, template.format(**facts))


def combine(check_id: str, findings: list[Finding], data: dict) -> Check:
    """One check from several findings: the most serious speaks; all are kept in data["findings"]."""
    worst = max(findings, key=lambda f: STATUS_WEIGHT[f.status])
    data["findings"] = [dataclasses.asdict(f) for f in findings]
    return Check(id=check_id, status=worst.status, detail=worst.detail, data=data)
