"""Canary deliveries on the portal's side: record each one, and let it prove its run's vector relayed.

The `canary` command's receiver calls `record_delivery` for every recipient token that arrives.
A run whose report is final (the engine's whole report, with its verdict) is settled at once: the
vector is marked delivered and the verdicts follow (`suite.settle_deliveries`). After the run is
over (done, failed, interrupted) the delivery is *late*: the verdict still upgrades, and the move
is written as a VerdictChange. While the worker still writes the report, only the row is kept:
whoever stores the final report settles it with `recorded_arrivals(run)`.
"""

from __future__ import annotations

import logging

from django.db import transaction

from relaytests.models import CanaryDelivery, TestRun, VerdictChange
from relaytests.probe.receiver import Delivery
from relaytests.probe.report import Report
from relaytests.probe.suite import settle_deliveries

log = logging.getLogger(__name__)

Status = TestRun.Status
OVER = (Status.DONE, Status.FAILED, Status.INTERRUPTED)


def record_delivery(delivery: Delivery) -> CanaryDelivery | None:
    """Store one arrived token and settle its run's report; None when no run has that run id."""
    with transaction.atomic():
        run = TestRun.objects.select_for_update().filter(probe_run_id=delivery.run_id).first()
        if run is None:
            log.warning("canary: token %s names no run of this portal; not recorded", delivery.token)
            return None
        row = CanaryDelivery.objects.create(
            run=run,
            vector_id=delivery.vector_id,
            token=delivery.token,
            peer_address=delivery.peer_address,
            received_chain=list(delivery.received_chain),
            late=run.status in OVER,
        )
        if has_final_report(run) and _carries(run.report, delivery.token):
            _settle(run)
    log.info("canary: %s of run %s arrived from %s%s", delivery.vector_id, run.pk, delivery.peer_address,
             " (late)" if row.late else "")
    return row


def has_final_report(run: TestRun) -> bool:
    """The engine's whole report is stored (not a progress snapshot of hosts so far)."""
    return bool(run.report.get("verdict")) and run.status not in (Status.QUEUED, Status.RUNNING)


def _carries(report: dict, token: str) -> bool:
    return any(v.get("token") == token for host in report.get("hosts", []) for v in host.get("vectors", []))


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


def _settle(run: TestRun) -> None:
    report = Report.from_dict(run.report)
    settle_deliveries(report, recorded_arrivals(run))
    old_verdict = run.verdict
    run.report = report.to_dict()
    run.verdict = report.verdict
    run.save(update_fields=["report", "verdict"])
    if run.status in OVER and run.verdict != old_verdict:
        VerdictChange.objects.create(server_id=run.server_id, run=run, old_verdict=old_verdict,
                                     new_verdict=run.verdict)
