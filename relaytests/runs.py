"""The life of a TestRun: queued -> running -> done (through awaiting_delivery while canary messages
are out), or failed / interrupted with a reason.

Every transition is a conditional UPDATE whose row count says whether this caller won it
(healthchecks' sendalerts pattern), so two workers, the reaper and a late redelivery of
the same task can never both move one run.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, TextField, Value, When
from django.db.models.functions import Concat
from django.utils import timezone

from relaytests import alerts, audit
from relaytests.deliveries import recorded_arrivals, settled_report
from relaytests.models import ACTIVE_STATUSES, MailServer, TestRun, hosts_of
from relaytests.probe.canary import new_run_id

Status = TestRun.Status

BROKER_UNREACHABLE = "The task queue is unreachable; nothing was tested. Try again later or tell central IT."
WORKER_LOST = (
    "The worker stopped while testing (worker lost); nothing after its last progress was recorded, "
    "so what is shown is as far as it got. Start a new test."
)
NEVER_STARTED = "No worker picked this test up in time; nothing was tested. Start a new test."
NO_WORKER_AT_VANTAGE = (
    "No worker at the {vantage} vantage picked this part of the test up in time; nothing was tested "
    "from there. Central IT: is a worker at that vantage consuming the queue probe.{vantage}?"
)


class NotStarted(Exception):
    """Why a run was not started, in words for the person who asked."""


class AlreadyActive(NotStarted):
    """The server has a run queued or running: `run` (None when it ended meanwhile)."""

    def __init__(self, run: TestRun | None):
        super().__init__("A test of this server is already queued or running; here it is.")
        self.run = run


def start(server: MailServer, user, trigger: str, site_url: str = "") -> TestRun:
    """Create a queued run of the server for the user; NotStarted when the user's hourly cap says no,
    AlreadyActive when the server has a run queued or running. `user` is None for the schedule, whose
    own cap (RELAYTEST_SCHEDULE_MAX_QUEUED, `schedule.sweep`) stands in for the hourly one.

    The cap is counted and the run created in one transaction that holds the user's row (SQLite's
    BEGIN IMMEDIATE holds the whole database), so parallel requests are counted one after another.
    """
    with transaction.atomic():
        if user is not None:
            get_user_model().objects.select_for_update().get(pk=user.pk)
            refusal = over_hourly_cap(user)
            if refusal:
                raise NotStarted(refusal)
        try:
            with transaction.atomic():
                run = TestRun.objects.create(
                    server=server,
                    trigger=trigger,
                    started_by=user,
                    probe_run_id=new_run_id(),
                    addresses=server.addresses,
                    site_url=site_url,
                    vantage=settings.RELAYTEST_VANTAGES[0],
                )
                _add_parts(run)
                audit.record(
                    user,
                    audit.Action.RUN_STARTED,
                    run,
                    f"{server} ({run.get_trigger_display()})",
                    server.department,
                )
                return run
        except IntegrityError:  # the one-active-run-per-server constraint
            raise AlreadyActive(server.runs.filter(status__in=ACTIVE_STATUSES).first()) from None


def _add_parts(run: TestRun) -> None:
    """One part per further vantage (RELAYTEST_VANTAGES after the first, the run's own)."""
    for vantage in settings.RELAYTEST_VANTAGES[1:]:
        TestRun.with_parts.create(
            server=run.server,
            trigger=run.trigger,
            started_by=run.started_by,
            probe_run_id=new_run_id(),
            addresses=run.addresses,
            site_url=run.site_url,
            vantage=vantage,
            part_of=run,
        )


def over_hourly_cap(user) -> str:
    """Why the user may not start another run now, or "" when they may."""
    cap = settings.RELAYTEST_RUNS_PER_HOUR
    recent = TestRun.objects.filter(started_by=user, created_at__gte=timezone.now() - timedelta(hours=1))
    started = list(recent.order_by("-created_at").values_list("created_at", flat=True)[:cap])
    if len(started) < cap:
        return ""
    free_at = timezone.localtime(started[-1] + timedelta(hours=1))
    return (
        f"You have started {cap} tests in the last hour, the most allowed. "
        f"You can start the next one at {free_at:%H:%M} ({free_at.tzname()})."
    )


def claim(run_id: int) -> TestRun | None:
    """Move a queued run to running; None when it is not queued any more (reaped, or already taken)."""
    now = timezone.now()
    won = TestRun.with_parts.filter(pk=run_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=now, heartbeat_at=now, status_reason=""
    )
    return TestRun.with_parts.select_related("server").get(pk=run_id) if won else None


def release(run: TestRun) -> bool:
    """Give a claimed run back to the queue (it will be claimed again by the task's retry)."""
    return bool(
        TestRun.with_parts.filter(pk=run.pk, status=Status.RUNNING).update(
            status=Status.QUEUED, started_at=None, heartbeat_at=None
        )
    )


def busy_runs(run: TestRun) -> list[int]:
    """The other running runs from this run's vantage connected to one of its hosts (the same address
    and port). Runs from other vantages connect from other addresses, which a server counts apart.

    Called after `claim`: of two runs that share a host, the one that looks second always sees the
    other's committed claim, so at most one of them goes on (both may back off, never both proceed).
    A JSON list has no portable overlap lookup, and running runs are few.
    """
    others = TestRun.with_parts.filter(status=Status.RUNNING, vantage=run.vantage).exclude(pk=run.pk)
    wanted = hosts_of(run.addresses, run.server.port, run.server.more_ports)
    return [
        pk
        for pk, addresses, port, more_ports in others.values_list(
            "pk", "addresses", "server__port", "server__more_ports"
        )
        if wanted & hosts_of(addresses, port, more_ports)
    ]


def touch(run_id: int) -> bool:
    """The worker's sign of life; False when the run is no longer running (reaped meanwhile)."""
    return bool(
        TestRun.with_parts.filter(pk=run_id, status=Status.RUNNING).update(heartbeat_at=timezone.now())
    )


def save_progress(run_id: int, report: dict) -> bool:
    """Store the report so far (the hosts started or finished) and count it as a sign of life."""
    return bool(
        TestRun.with_parts.filter(pk=run_id, status=Status.RUNNING).update(
            report=report, heartbeat_at=timezone.now()
        )
    )


def finish(run_id: int, report: dict, awaited: Iterable[str] = ()) -> str | None:
    """Store the engine's report and verdict; the new status (None when the run was ended elsewhere).

    `awaited` are the tokens of test messages the servers took (`suite.awaited_tokens`). Those that
    arrived while the worker probed are folded in now; while any is still out, the run waits for it
    (awaiting_delivery, ended by `deliveries.finalise`), else it is done and its verdict change written.
    """
    with transaction.atomic():
        run = TestRun.with_parts.select_for_update().filter(pk=run_id, status=Status.RUNNING).first()
        if run is None:
            return None
        arrivals = recorded_arrivals(run)
        if arrivals:
            report = settled_report(run, report).to_dict()
        status = Status.AWAITING_DELIVERY if set(awaited) - arrivals.keys() else Status.DONE
        won = TestRun.with_parts.filter(pk=run_id, status=Status.RUNNING).update(
            status=status, report=report, verdict=report["verdict"], finished_at=timezone.now()
        )
        if won:
            run = TestRun.with_parts.get(pk=run_id)
            run.record_verdict()
            alerts.note(run)
    return status if won else None


def awaiting_past(wait: float, stale_after: float) -> list[int]:
    """Runs still waiting for deliveries long after their finalising task was due: it was lost."""
    overdue = timezone.now() - timedelta(seconds=wait + stale_after)
    waiting = TestRun.with_parts.filter(status=Status.AWAITING_DELIVERY, finished_at__lt=overdue)
    return list(waiting.values_list("pk", flat=True))


def fail(run_id: int, reason: str) -> bool:
    """Nothing useful came of the run: it ends failed, with the reason a person can act on."""
    return _end(run_id, ACTIVE_STATUSES, Status.FAILED, reason)


def interrupt(run_id: int, reason: str, report: dict | None = None) -> bool:
    """The run was stopped part-way: it ends interrupted, keeping what it recorded (or `report`)."""
    extra = {"report": report} if report is not None else {}
    return _end(run_id, (Status.RUNNING,), Status.INTERRUPTED, reason, **extra)


def _end(run_id: int, from_statuses, status: str, reason: str, **fields) -> bool:
    return bool(
        TestRun.with_parts.filter(pk=run_id, status__in=from_statuses).update(
            status=status, status_reason=reason, finished_at=timezone.now(), **fields
        )
    )


def _with_vantage(text: str) -> Concat:
    """`text` with each {vantage} filled in by the database from the row's own vantage."""
    pieces: list = []
    for i, piece in enumerate(text.split("{vantage}")):
        pieces += [F("vantage"), Value(piece)] if i else [Value(piece)]
    return Concat(*pieces, output_field=TextField())


def reap_stale(stale_after: float, queued_after: float) -> int:
    """Interrupt, in one UPDATE, runs a dead worker left running and runs no worker ever took.

    The partial report, the heartbeat time and the history stay as they were: the page shows
    how far the run got. Returns the number of runs reaped.
    """
    now = timezone.now()
    silent_since = now - timedelta(seconds=stale_after)
    running_dead = Q(status=Status.RUNNING) & (
        Q(heartbeat_at__lt=silent_since) | Q(heartbeat_at__isnull=True, started_at__lt=silent_since)
    )
    never_taken = Q(status=Status.QUEUED, created_at__lt=now - timedelta(seconds=queued_after))
    return TestRun.with_parts.filter(running_dead | never_taken).update(
        status=Status.INTERRUPTED,
        finished_at=now,
        status_reason=Case(
            When(status=Status.RUNNING, then=Value(WORKER_LOST)),
            When(part_of__isnull=False, then=_with_vantage(NO_WORKER_AT_VANTAGE)),
            default=Value(NEVER_STARTED),
            output_field=TextField(),
        ),
    )
