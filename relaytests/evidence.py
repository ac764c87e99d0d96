"""Evidence retention: a run keeps its whole report (SMTP transcripts, delivery headers) for
RELAYTEST_EVIDENCE_DAYS; after that its report is trimmed to its summary, which is what the history,
the comparison with the next run and the guidance read: the verdicts, each vector's outcome, reason
and deciding reply line, and every check. A server's latest run and a run whose verdict was a change
keep their evidence for as long as they exist: they are what someone may be asked to prove.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from relaytests.models import MailServer, TestRun, VerdictChange

BATCH = 200
# A reply line longer than this is cut: the reason and code are what the summary needs.
REPLY_KEPT = 200
OVER = (TestRun.Status.DONE, TestRun.Status.FAILED, TestRun.Status.INTERRUPTED)


def trimmed_report(report: dict) -> dict:
    """The report without its bulk: no transcripts, no Received: chains, reply lines cut short."""
    return {
        **report,
        "hosts": [
            {**host, "transcript": [], "vectors": [_trimmed_vector(v) for v in host.get("vectors", [])]}
            for host in report.get("hosts", [])
        ],
        "evidence_trimmed": True,
    }


def _trimmed_vector(vector: dict) -> dict:
    trimmed = {
        key: value[:REPLY_KEPT] if key in ("reply", "data_reply") and isinstance(value, str) else value
        for key, value in vector.items()
    }
    if isinstance(trimmed.get("delivery"), dict):
        trimmed["delivery"] = {
            key: value for key, value in trimmed["delivery"].items() if key != "received_chain"
        }
    return trimmed


def trimmable(days: int):
    """Runs and parts over for more than `days` whose evidence may go: not a server's latest run's."""
    cutoff = timezone.now() - timedelta(days=days)
    latest = MailServer.objects.exclude(latest_run=None).values("latest_run")
    return (
        TestRun.with_parts.filter(status__in=OVER, finished_at__lt=cutoff, evidence_trimmed=False)
        .exclude(pk__in=latest)
        .exclude(part_of__in=latest)
        .exclude(pk__in=VerdictChange.objects.values("run"))
    )


def trim_old_evidence(days: int) -> int:
    """Trim the reports of the runs `trimmable` names, a batch per transaction; how many were trimmed."""
    trimmed = 0
    while True:
        with transaction.atomic():
            batch = list(trimmable(days).select_for_update(skip_locked=True).only("report")[:BATCH])
            for run in batch:
                run.report, run.evidence_trimmed = trimmed_report(run.report), True
            TestRun.with_parts.bulk_update(batch, ["report", "evidence_trimmed"])
        trimmed += len(batch)
        if len(batch) < BATCH:
            return trimmed
