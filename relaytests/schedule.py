"""Scheduled re-tests: when each server is due, and the sweep (a beat task) that queues their runs.

Nothing is held in memory. A server is due once its period has passed since it was last tested
(`MailServer.last_tested_at`, else since it was registered); its period is its own, else its
department's, else RELAYTEST_RETEST_EVERY, and 0 turns the schedule off. The runs a sweep queued are
rows like any other, so a restarted beat or worker carries on from the database: a server with a run
queued or running is never due, and the queued scheduled runs count against the cap.
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.conf import settings
from django.db.models import Case, DateTimeField, DurationField, ExpressionWrapper, F, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from relaytests import runs
from relaytests.models import ACTIVE_STATUSES, MailServer, TestRun, hosts_of

OFF = timedelta(0)


def retest_period() -> Coalesce:
    """The server's own period, else its department's, else the portal's."""
    portal = Value(timedelta(seconds=settings.RELAYTEST_RETEST_EVERY), output_field=DurationField())
    return Coalesce("retest_every", "department__retest_every", portal, output_field=DurationField())


def with_next_due(servers: QuerySet[MailServer]) -> QuerySet[MailServer]:
    """The servers with `next_due`: when the schedule re-tests each, None where it is off."""
    since = Coalesce("last_tested_at", "created_at")
    return servers.alias(retest_period=retest_period()).annotate(
        next_due=Case(
            When(retest_period__lte=OFF, then=None),
            default=ExpressionWrapper(since + F("retest_period"), output_field=DateTimeField()),
        )
    )


def due_servers() -> QuerySet[MailServer]:
    """Servers whose time has come and that have no run queued or running, the longest overdue first."""
    active = TestRun.objects.filter(status__in=ACTIVE_STATUSES).values("server")
    servers = MailServer.objects.exclude(pk__in=active)
    return with_next_due(servers).filter(next_due__lte=timezone.now()).order_by("next_due", "pk")


def free_slots() -> int:
    """How many more scheduled runs may be queued now (RELAYTEST_SCHEDULE_MAX_QUEUED)."""
    queued = TestRun.objects.filter(status=TestRun.Status.QUEUED, trigger=TestRun.Trigger.SCHEDULE)
    return max(0, settings.RELAYTEST_SCHEDULE_MAX_QUEUED - queued.count())


def busy_hosts() -> set[tuple[str, int]]:
    """The hosts (address and port) of every run queued or running."""
    active = TestRun.objects.filter(status__in=ACTIVE_STATUSES).values_list(
        "addresses", "server__port", "server__more_ports"
    )
    return set().union(*(hosts_of(addresses, port, more) for addresses, port, more in active))


def pick(servers, slots: int, busy: set[tuple[str, int]]) -> list[MailServer]:
    """Up to `slots` of the servers, none sharing a host with a run already active or with another pick:
    a run queued behind another on the same host would only wait for it (`runs.busy_runs`)."""
    picked: list[MailServer] = []
    for server in servers:
        if len(picked) >= slots:
            break
        hosts = hosts_of(server.addresses, server.port, server.more_ports)
        if hosts & busy:
            continue
        busy |= hosts
        picked.append(server)
    return picked


def sweep() -> list[tuple[TestRun, float]]:
    """Queue a run of each due server, as many as the cap leaves room for; each with the delay (seconds)
    after which it should start: spread over the time to the next sweep, with jitter, so that many
    servers due at once never start together.

    Each run is created in its own transaction by the Test button's code (`runs.start`): a sweep cut
    short keeps the runs it made, and the next one goes on from there.
    """
    slots = free_slots()
    if not slots:
        return []
    picked = pick(due_servers().iterator(), slots, busy_hosts())
    share = settings.RELAYTEST_SCHEDULE_SWEEP_EVERY / max(1, len(picked))
    queued = []
    for i, server in enumerate(picked):
        try:
            run = runs.start(server, None, TestRun.Trigger.SCHEDULE)
        except runs.AlreadyActive:
            continue  # someone pressed Test since the query
        queued.append((run, (i + random.random()) * share))
    return queued
