"""Celery tasks: thin. They claim a run, hand its addresses to the engine and store what it reports."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from celery import shared_task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections, transaction
from kombu.exceptions import OperationalError

from relaytests import alerts, deliveries, evidence, runs, schedule, unregistered, worker_loop
from relaytests.engine_settings import portal_defaults
from relaytests.models import MailServer, TestRun
from relaytests.probe.environment import probe_queue
from relaytests.probe.report import SCHEMA, HostReport, Report
from relaytests.probe.suite import SuiteConfig, awaited_tokens
from relaytests.probe.suite import run_suite as probe_suite
from relaytests.probe.targets import HostTarget

log = logging.getLogger(__name__)

# What a failed publish raises: Celery wraps transport errors in kombu's OperationalError,
# a refused or timed-out socket can still surface as an OSError.
PUBLISH_ERRORS = (OperationalError, OSError)

INTERNAL_ERROR = (
    "The test stopped on an internal error; nothing more was recorded. "
    "Central IT finds the details in the worker's log."
)
TIME_LIMIT = (
    "The test ran longer than its time limit ({seconds} s) and was stopped; "
    "the hosts it reached before that are shown."
)
WRONG_VANTAGE = (
    "This test was meant for a worker at the {wanted} vantage but a worker at the {actual} vantage took it, "
    "so it was not run: central IT should make only {wanted} workers consume the queue probe.{wanted}."
)
ADDRESS_BUSY = (
    "Another test kept this server's address and port busy for too long; nothing was tested. Try again later."
)
# A run's progress is written at most this often (seconds): the live page polls about as often.
PROGRESS_EVERY = 1.0
# Seconds before an alert's mail is tried again after its mail server failed: doubling up to the most.
ALERT_RETRY_FIRST = 2
ALERT_RETRY_MAX = 600

T = TypeVar("T")


def enqueue_run(run: TestRun, countdown: float = 0) -> bool:
    """Send a queued run, and each part of it, to its vantage's probe queue once its row is committed,
    to start `countdown` seconds later; False when the broker is down for the run.

    Celery's `delay_on_commit` publishes from an on_commit hook too, but a broker error would escape
    that hook after the view's transaction committed (a 500) and leave the run queued for ever. So our
    hook catches the error itself and marks the run failed. The views call this outside any atomic
    block, where on_commit runs the hook at once and the answer is known here; inside a block the hook
    runs at commit, the run's status records the outcome, and this returns True ("on its way").
    """
    published: list[bool] = []
    transaction.on_commit(lambda: published.append(_publish_with_parts(run, countdown)))
    return False not in published


def _publish_with_parts(run: TestRun, countdown: float) -> bool:
    """Each part is sent, and fails, on its own: the run's answer is the run's."""
    sent = _publish(run, countdown)
    for part in run.parts():
        _publish(part, countdown)
    return sent


def _publish(run: TestRun, countdown: float) -> bool:
    try:
        # The limits travel in the message (Celery puts the publisher's there), so set them from settings here.
        result = run_suite.apply_async(
            (run.pk,),
            queue=probe_queue(run.vantage),
            countdown=countdown,
            soft_time_limit=settings.RELAYTEST_TASK_SOFT_LIMIT,
            time_limit=settings.RELAYTEST_TASK_HARD_LIMIT,
        )
    except PUBLISH_ERRORS:
        log.warning("broker unreachable, run %s marked failed", run.pk, exc_info=True)
        runs.fail(run.pk, runs.BROKER_UNREACHABLE)
        run.status, run.status_reason = TestRun.Status.FAILED, runs.BROKER_UNREACHABLE
        return False
    TestRun.with_parts.filter(pk=run.pk).update(celery_task_id=result.id)
    run.celery_task_id = result.id
    return True


@shared_task(
    bind=True,
    acks_late=True,
    soft_time_limit=settings.RELAYTEST_TASK_SOFT_LIMIT,
    time_limit=settings.RELAYTEST_TASK_HARD_LIMIT,
    max_retries=settings.RELAYTEST_BUSY_RETRIES,
)
def run_suite(self, run_id: int) -> None:
    try:
        run = runs.claim(run_id)
    except DatabaseError as exc:  # the run is still queued: try again rather than leave it for the reaper
        log.warning("run %s could not be claimed; trying again", run_id, exc_info=True)
        raise self.retry(exc=exc, countdown=settings.RELAYTEST_BUSY_RETRY_DELAY) from exc
    if run is None:
        log.info("run %s is not queued any more (taken or reaped); nothing to do", run_id)
        return
    # From here on this worker holds the run: whatever goes wrong, the run ends, not left to the reaper.
    soft, hard = _time_limits(self)
    try:
        if run.vantage != settings.RELAYTEST_VANTAGE:
            log.error(
                "run %s is for the %s vantage; this worker is at %s",
                run_id,
                run.vantage,
                settings.RELAYTEST_VANTAGE,
            )
            runs.fail(run_id, WRONG_VANTAGE.format(wanted=run.vantage, actual=settings.RELAYTEST_VANTAGE))
            return
        if runs.busy_runs(run):
            _wait_for_free_hosts(self, run)
            return
        # On the process's shared loop, with the other runs of this worker; the threads pool has no time
        # limits of its own, so the soft limit is enforced here (prefork's signal may come first).
        probing = ProgressRecorder(run).probe(suite_config(run))
        # The wait holds no database connection (the loop writes through its own): a worker of dozens
        # of runs would otherwise keep dozens open, idle, for minutes.
        connections.close_all()
        report = worker_loop.run(probing, within=soft, grace=hard - soft)
        status = runs.finish(run_id, report.to_dict(), awaited_tokens(report))
    except Retry:
        raise
    except (SoftTimeLimitExceeded, worker_loop.Overran):
        log.warning("run %s hit its soft time limit", run_id)
        runs.interrupt(run_id, TIME_LIMIT.format(seconds=soft))
    except Exception:
        log.exception("run %s failed", run_id)
        runs.fail(run_id, INTERNAL_ERROR)
    else:
        if status is None:
            log.warning("run %s was ended elsewhere (reaped?) before it finished; report dropped", run_id)
        elif status == TestRun.Status.AWAITING_DELIVERY:
            _schedule_finaliser(run_id)


def _schedule_finaliser(run_id: int) -> None:
    """The canary wait runs in the broker, not in this worker: a task that settles the run afterwards.

    The run is awaiting delivery already, not running: when the task cannot be sent, the reaper
    finalises it (`runs.awaiting_past`).
    """
    try:
        finalise_run.apply_async((run_id,), countdown=settings.RELAYTEST_CANARY_WAIT)
    except PUBLISH_ERRORS:
        log.warning("broker unreachable: run %s is finalised by the reaper instead", run_id, exc_info=True)


@shared_task(
    ignore_result=True,
    acks_late=True,
    # A mail server that is down or refuses (SMTPException is an OSError) is tried again, a little later
    # each time up to ALERT_RETRY_MAX seconds apart, for as long as it takes: an alert is delayed, never lost.
    autoretry_for=(OSError,),
    retry_backoff=ALERT_RETRY_FIRST,
    retry_backoff_max=ALERT_RETRY_MAX,
    retry_jitter=True,
    max_retries=None,
)
def send_alert(alert_id: int) -> bool:
    """Mail an alert (default queue `celery`): never part of a run, so a mail server down fails no run."""
    return alerts.send(alert_id)


@shared_task(ignore_result=True)
def finalise_run(run_id: int) -> bool:
    """After the canary wait (default queue `celery`): the run ends done with what arrived; idempotent."""
    return deliveries.finalise(run_id)


def _time_limits(task) -> tuple[float, float]:
    """The soft and hard limits this message carried ([hard, soft] in the request), else the task's own."""
    hard, soft = task.request.timelimit or (None, None)
    return soft or task.soft_time_limit, hard or task.time_limit


def _wait_for_free_hosts(task, run: TestRun) -> None:
    """One connection per host (address and port) across all workers: try again later, a bounded
    number of times."""
    if task.request.retries >= task.max_retries:
        runs.fail(run.pk, ADDRESS_BUSY)
        return
    runs.release(run)
    # The jitter keeps two runs that backed off from each other from colliding again.
    delay = settings.RELAYTEST_BUSY_RETRY_DELAY * random.uniform(0.5, 1.5)
    raise task.retry(countdown=delay, queue=probe_queue(run.vantage))


def suite_config(run: TestRun) -> SuiteConfig:
    """The engine's settings for this run of its server."""
    return portal_defaults().suite_config(
        send_data=settings.RELAYTEST_CANARY_ENABLED,
        max_hosts_in_flight=settings.RELAYTEST_MAX_HOSTS_IN_FLIGHT,
        local_domain=_mail_domain(run.server),
        run_id=run.probe_run_id,
        # Who ran the test, for the message a relaying server passes on: the organisation and this run.
        portal_name=f"{settings.PORTAL_ORG_NAME} Relay Test Portal",
        portal_url=run.permalink,
    )


def _mail_domain(server: MailServer) -> str | None:
    """The domain the server receives mail for: as registered, else the domain whose MX it is."""
    if server.mail_domain:
        return server.mail_domain
    return server.target if server.kind == MailServer.Kind.DOMAIN else None


def like_a_request(work: Callable[..., T]) -> Callable[..., T]:
    """Database work on a thread of the loop's, bracketed as Django brackets a request: a connection
    that is broken or older than DATABASE_CONN_MAX_AGE (0: every one) is closed before and after."""

    @functools.wraps(work)
    def bracketed(*args) -> T:
        close_old_connections()
        try:
            return work(*args)
        finally:
            close_old_connections()

    return bracketed


class ProgressRecorder:
    """Runs the engine for one run and writes its progress to the run as it happens.

    Events only note which host changed; a writer task turns the hosts into a snapshot and writes it
    at most every PROGRESS_EVERY seconds (the latest snapshot wins, the last one is always written),
    on the loop's database threads (`sync_to_async`), one write of a run at a time, so the event loop
    never waits on the database, an older snapshot never overwrites a newer one, and a run of many
    events is not many rewrites of its report. A heartbeat tells the reaper this worker is alive even while a slow server keeps
    every vector waiting.
    """

    def __init__(self, run: TestRun):
        self.run_id = run.pk
        self.server = run.server
        self.addresses = list(run.addresses)
        # Each host's report as the engine keeps it (its own object, still changing), and its state.
        self.hosts: dict[tuple[str, int], tuple[HostReport, str]] = {}
        self._changed = False
        database = worker_loop.shared_loop.database()
        self._save = sync_to_async(
            like_a_request(runs.save_progress), thread_sensitive=False, executor=database
        )
        self._touch = sync_to_async(like_a_request(runs.touch), thread_sensitive=False, executor=database)

    async def probe(self, config: SuiteConfig) -> Report:
        heartbeat = asyncio.create_task(self._beat())
        try:
            async with self.writing_progress():
                return await probe_suite(
                    self.server.target,
                    self._host_targets(),
                    config,
                    progress=self.on_progress,
                    mail_domain=_mail_domain(self.server),
                )
        finally:
            heartbeat.cancel()

    @contextlib.asynccontextmanager
    async def writing_progress(self):
        """Write progress while the body runs, and what is left when it ends."""
        ended = asyncio.Event()
        writer = asyncio.create_task(self._write_progress(ended))
        try:
            yield
        finally:
            ended.set()
            await writer

    async def _write_progress(self, ended: asyncio.Event) -> None:
        while True:
            last_round = ended.is_set()
            if self._changed:
                self._changed = False
                await self._save(self.run_id, self._snapshot())
            if last_round:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), PROGRESS_EVERY)

    def _host_targets(self) -> list[HostTarget]:
        """One host per address and port: the target's port and the others the server lists."""
        name = self.server.target if self.server.kind == MailServer.Kind.HOST else None
        domain = _mail_domain(self.server)
        return [
            HostTarget(address, port, name, domain)
            for address in self.addresses
            for port in self.server.ports
        ]

    async def on_progress(self, event) -> None:
        state = "done" if event.kind == "host_done" else "testing"
        self.hosts[(event.host.address, event.host.port)] = (event.host, state)
        self._changed = True

    def _snapshot(self) -> dict:
        """The report so far: hosts in the run's address and port order, each as the engine has it now."""
        order = {(h.address, h.port): i for i, h in enumerate(self._host_targets())}
        ordered = sorted(
            self.hosts.values(), key=lambda pair: order.get((pair[0].address, pair[0].port), len(order))
        )
        hosts = [{**dataclasses.asdict(host), "state": state} for host, state in ordered]
        return {"schema": SCHEMA, "target": self.server.target, "hosts": hosts}

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(settings.RELAYTEST_HEARTBEAT_EVERY)
            await self._touch(self.run_id)


@shared_task(ignore_result=True)
def reap_stale_runs() -> int:
    """Periodic (beat): interrupt the runs that dead workers left behind, with the reason, and finalise
    the runs whose finalising task was lost (a broker restart, a publish that failed)."""
    reaped = runs.reap_stale(settings.RELAYTEST_STALE_AFTER, settings.RELAYTEST_QUEUED_STALE_AFTER)
    if reaped:
        log.warning("reaped %d stale run(s)", reaped)
    for run_id in runs.awaiting_past(settings.RELAYTEST_CANARY_WAIT, settings.RELAYTEST_STALE_AFTER):
        log.warning("run %s waited for deliveries past its finaliser (lost); finalising it now", run_id)
        finalise_run(run_id)
    for alert in alerts.unqueued(older_than=settings.RELAYTEST_REAP_EVERY):
        log.warning("alert %s never reached the broker; queuing it now", alert.pk)
        alerts.queue(alert)
    return reaped


@shared_task(ignore_result=True)
def trim_old_evidence() -> int:
    """Periodic (beat, daily): trim the reports of runs older than RELAYTEST_EVIDENCE_DAYS to their summary."""
    trimmed = evidence.trim_old_evidence(settings.RELAYTEST_EVIDENCE_DAYS)
    log.info("trimmed the evidence of %d run(s)", trimmed)
    return trimmed


@shared_task(ignore_result=True)
def schedule_retests() -> int:
    """Periodic (beat, every RELAYTEST_SCHEDULE_SWEEP_EVERY seconds): queue the runs of the servers due
    for their scheduled re-test, each to start after its share of the time to the next sweep."""
    queued = schedule.sweep()
    for run, countdown in queued:
        enqueue_run(run, countdown=countdown)
    if queued:
        log.info("queued %d scheduled re-test(s)", len(queued))
    return len(queued)


@shared_task(ignore_result=True)
def discover_servers() -> int:
    """Periodic (beat, every RELAYTEST_DISCOVERY_EVERY seconds) and central IT's button, on the probe
    queue: look for the mail servers in scope, registered or not."""
    found = unregistered.discover()
    log.info("discovery found %d mail server(s) in scope", found)
    return found
