"""Canary deliveries on the portal's side: record each one, let it prove its run's vector relayed, and
end the canary wait.

The `canary` command's receiver calls `record_message` with the recipient tokens of each message
that arrives: all its rows are stored in one transaction or none, before the receiver answers 250.
A sender's retry of the same message adds no row (unique run, token and message key).
While the worker still writes the report (queued, running), only the rows are kept: `runs.finish`
folds them in. A run awaiting delivery is settled at once: a vector whose message its host took is
marked delivered and the verdicts follow (`suite.settle_deliveries`; any other arrival is listed as
unexpected and proves nothing); when nothing more is awaited the run is finalised there and then.
`finalise` ends the wait for the rest (the finalising task, or the reaper when that task was lost).
After the run is over (done, failed, interrupted) a delivery is *late*: a proof still upgrades the
verdict, and the move is written as a VerdictChange unless a newer run has a verdict already
(`TestRun.record_verdict_change`); whenever a run becomes final here, `alerts.note` mails what changed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import groupby

from django.db import transaction

from relaytests import alerts
from relaytests.models import CanaryDelivery, TestRun
from relaytests.probe.receiver import Delivery
from relaytests.probe.report import Report
from relaytests.probe.suite import awaited_tokens, settle_deliveries
from relaytests.probe.vocabulary import Verdict

log = logging.getLogger(__name__)

Status = TestRun.Status
OVER = (Status.DONE, Status.FAILED, Status.INTERRUPTED)


def record_message(deliveries: Sequence[Delivery]) -> list[CanaryDelivery]:
    """Store the tokens one message carried and settle their runs, all or nothing; the new rows.

    Runs are locked in the order of their run ids, so two messages for the same runs never deadlock.
    """
    by_run = sorted(deliveries, key=lambda delivery: delivery.run_id)
    with transaction.atomic():
        return [
            row for run_id, group in groupby(by_run, key=lambda d: d.run_id) for row in _record(run_id, group)
        ]


def _record(run_id: str, deliveries) -> list[CanaryDelivery]:
    run = TestRun.with_parts.select_for_update().filter(probe_run_id=run_id).first()
    if run is None:
        log.warning("canary: run id %s names no run of this portal; not recorded", run_id)
        return []
    rows = [row for row, created in (_store(run, delivery) for delivery in deliveries) if created]
    if rows and has_final_report(run):
        _settle(run)
    for row in rows:
        log.info(
            "canary: %s of run %s arrived from %s%s",
            row.vector_id,
            run.pk,
            row.peer_address,
            " (late)" if row.late else "",
        )
    return rows


def _store(run: TestRun, delivery: Delivery) -> tuple[CanaryDelivery, bool]:
    """The row of this token in this message, and whether it is new (not a sender's retry)."""
    return CanaryDelivery.objects.get_or_create(
        run=run,
        token=delivery.token,
        message_key=delivery.message_key,
        defaults={
            "vector_id": delivery.vector_id,
            "peer_address": delivery.peer_address,
            "received_chain": list(delivery.received_chain),
            "late": run.status in OVER,
        },
    )


def finalise(run_id: int) -> bool:
    """The canary wait is over: fold in what arrived and end the run done; False when it is not waiting.

    Idempotent: a second call (a redelivered task, the reaper) finds the run done and does nothing.
    """
    with transaction.atomic():
        run = (
            TestRun.with_parts.select_for_update().filter(pk=run_id, status=Status.AWAITING_DELIVERY).first()
        )
        return run is not None and _finalise(run, settled_report(run))


def has_final_report(run: TestRun) -> bool:
    """The engine's whole report is stored (not a progress snapshot of hosts so far)."""
    return bool(run.report.get("verdict")) and run.status not in (Status.QUEUED, Status.RUNNING)


def upgraded_by_late_delivery(report: Report) -> bool:
    """The verdict is open_relay only because of canaries that arrived after the run was final."""
    deliveries = [v.delivery for host in report.hosts for v in host.vectors if v.delivered and v.delivery]
    only_late = bool(deliveries) and all(d.get("late") for d in deliveries)
    return report.verdict == Verdict.OPEN_RELAY and only_late


def recorded_arrivals(run: TestRun) -> dict[str, dict]:
    """Every token of the run that arrived, first arrival each, as `settle_deliveries` takes them."""
    arrivals: dict[str, dict] = {}
    for row in run.deliveries.order_by("received_at", "pk"):
        arrivals.setdefault(row.token, arrival(row))
    return arrivals


def arrival(row: CanaryDelivery) -> dict:
    return {
        "received_at": row.received_at.isoformat(timespec="milliseconds"),
        "peer_address": row.peer_address,
        "received_chain": row.received_chain,
        "late": row.late,
    }


def settled_report(run: TestRun, report: dict | None = None) -> Report:
    """The run's report (or `report`, about to be stored) with every recorded arrival folded in."""
    settled = Report.from_dict(run.report if report is None else report)
    settle_deliveries(settled, recorded_arrivals(run))
    return settled


def _settle(run: TestRun) -> None:
    report = settled_report(run)
    if run.status == Status.AWAITING_DELIVERY and not awaited_tokens(report):
        _finalise(run, report)  # every test message the servers took is in: no need to wait on
        return
    old_verdict = run.verdict
    run.report = report.to_dict()
    run.verdict = report.verdict
    run.upgraded_late = upgraded_by_late_delivery(report)
    run.save(update_fields=["report", "verdict", "upgraded_late"])
    run.record_verdict(was=old_verdict)
    alerts.note(run)


def _finalise(run: TestRun, report: Report) -> bool:
    """End a waiting run done with its settled report; the conditional update makes one caller win."""
    won = TestRun.with_parts.filter(pk=run.pk, status=Status.AWAITING_DELIVERY).update(
        status=Status.DONE, report=report.to_dict(), verdict=report.verdict
    )
    if won:
        run.refresh_from_db()
        run.record_verdict()
        alerts.note(run)
    return bool(won)
