"""Scheduled re-tests: the sweep with a fixed clock, the periods central IT sets, and "next due"."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from celery import Celery
from django.utils import timezone

from portal import celery as portal_celery
from relaytests import runs, schedule, tasks
from relaytests.models import MailServer, TestRun, VerdictChange
from tests.portal import factories
from tests.portal.conftest import client_for

# Committed for real, as in production, so that each run is published once its row is committed.
pytestmark = pytest.mark.django_db(transaction=True)

Status = TestRun.Status
WEEK = timedelta(days=7)
START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)


class Clock:
    """timezone.now for the portal's code, moved on by the test."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fixed = Clock(START)
    monkeypatch.setattr(timezone, "now", fixed)
    return fixed


@pytest.fixture
def published(monkeypatch):
    """What the sweep's task sends to the probe queue once its runs are committed: (run id, countdown)."""
    sent: list[tuple[int, float]] = []

    class Result:
        id = "task-id"

    def apply_async(args, countdown=0, **options):
        sent.append((args[0], countdown))
        return Result()

    monkeypatch.setattr(tasks.run_suite, "apply_async", apply_async)
    return sent


@pytest.fixture
def scheduling(settings):
    settings.RELAYTEST_RETEST_EVERY = int(WEEK.total_seconds())
    settings.RELAYTEST_SCHEDULE_SWEEP_EVERY = 3600
    settings.RELAYTEST_SCHEDULE_MAX_QUEUED = 5
    return settings


def registered_server(department, number: int, tested_at: datetime | None, **fields) -> MailServer:
    fields.setdefault("addresses", [f"10.0.{number // 250}.{number % 250 + 1}"])
    server = factories.make_server(department, target=f"mx{number}.physics.example.edu", **fields)
    MailServer.objects.filter(pk=server.pk).update(created_at=START - 2 * WEEK, last_tested_at=tested_at)
    return server


def finish_queued_runs() -> None:
    """The workers test every queued run: done and secure, which makes it the server's state."""
    for run in TestRun.objects.filter(status=Status.QUEUED):
        TestRun.objects.filter(pk=run.pk).update(status=Status.DONE, verdict="secure")
        run.refresh_from_db()
        run.record_state()


def scheduled_runs():
    return TestRun.objects.filter(trigger=TestRun.Trigger.SCHEDULE)


def test_200_servers_due_over_a_week_are_queued_spread_out_never_over_the_cap_never_twice(
    department, scheduling, clock, published
):
    step = (WEEK - timedelta(hours=1)) / 200  # the last one is due before the last sweep of the week
    servers = [registered_server(department, i, START - WEEK + i * step) for i in range(200)]
    due_at = {s.pk: START + i * step for i, s in enumerate(servers)}
    most_queued = 0

    while clock.now < START + WEEK:
        tasks.schedule_retests.apply()
        most_queued = max(most_queued, TestRun.objects.filter(status=Status.QUEUED).count())
        finish_queued_runs()
        clock.now += timedelta(seconds=scheduling.RELAYTEST_SCHEDULE_SWEEP_EVERY)

    runs_of = Counter(scheduled_runs().values_list("server_id", flat=True))
    assert runs_of == Counter({s.pk: 1 for s in servers})  # every server once, none twice
    assert 0 < most_queued <= scheduling.RELAYTEST_SCHEDULE_MAX_QUEUED
    for run in scheduled_runs():  # each queued at the first sweep after it became due
        assert due_at[run.server_id] <= run.created_at < due_at[run.server_id] + timedelta(hours=1)
    assert len(published) == 200 and all(0 <= delay < 3600 for _, delay in published)
    sweeps = Counter(scheduled_runs().values_list("created_at", flat=True))
    assert len(sweeps) > 150  # spread over the week, not a burst


def test_many_servers_due_at_once_are_queued_a_cap_at_a_time_spread_over_the_sweep(
    department, scheduling, clock, published
):
    scheduling.RELAYTEST_SCHEDULE_MAX_QUEUED = 20
    servers = [registered_server(department, i, START - 2 * WEEK) for i in range(50)]

    assert tasks.schedule_retests.apply().get() == 20
    delays = [delay for _, delay in published]
    assert delays == sorted(delays) and len(set(delays)) == 20  # one after another, with jitter
    assert delays[0] < 3600 / 20 and 3600 * 19 / 20 <= delays[-1] < 3600

    assert tasks.schedule_retests.apply().get() == 0  # the cap is full: none more, none twice
    clock.now += timedelta(minutes=10)
    for run in scheduled_runs()[:7]:
        TestRun.objects.filter(pk=run.pk).update(status=Status.RUNNING)
    assert tasks.schedule_retests.apply().get() == 7  # running runs leave the queue, their servers wait
    assert Counter(scheduled_runs().values_list("server_id", flat=True)).most_common(1)[0][1] == 1
    assert scheduled_runs().count() == 27 and len(servers) == 50


def test_a_sweep_cut_short_loses_nothing_and_the_next_one_goes_on_from_the_database(
    department, scheduling, clock, published, monkeypatch
):
    servers = [registered_server(department, i, START - 2 * WEEK) for i in range(5)]
    real_start, calls = runs.start, []

    def crashing_start(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise SystemExit("the worker is stopped")
        return real_start(*args, **kwargs)

    monkeypatch.setattr(runs, "start", crashing_start)
    with pytest.raises(SystemExit):
        schedule.sweep()
    assert scheduled_runs().count() == 2  # what it queued before it stopped is kept

    monkeypatch.setattr(runs, "start", real_start)  # a new process: nothing but the database
    tasks.schedule_retests.apply()

    assert sorted(scheduled_runs().values_list("server_id", flat=True)) == [s.pk for s in servers]


def test_a_server_with_a_run_still_active_gets_no_second_one(department, scheduling, clock, published):
    server = registered_server(department, 1, START - 2 * WEEK)
    pressed = factories.make_run(server, status=Status.RUNNING, trigger=TestRun.Trigger.MANUAL)

    assert tasks.schedule_retests.apply().get() == 0
    TestRun.objects.filter(pk=pressed.pk).update(status=Status.AWAITING_DELIVERY)
    assert tasks.schedule_retests.apply().get() == 1


def test_two_servers_on_one_host_are_not_queued_together(department, scheduling, clock, published):
    host = ["10.9.9.9"]
    first = registered_server(department, 1, START - 2 * WEEK, addresses=host)
    registered_server(department, 2, START - 2 * WEEK, addresses=host)
    other_port = registered_server(department, 3, START - 2 * WEEK, addresses=host, port=587)
    busy = registered_server(department, 4, START - 2 * WEEK, addresses=["10.8.8.8"])
    factories.make_run(
        registered_server(department, 5, START, addresses=["10.8.8.8"]), status=Status.RUNNING
    )  # another server's run tests busy's address

    tasks.schedule_retests.apply()

    assert set(scheduled_runs().values_list("server_id", flat=True)) == {first.pk, other_port.pk}
    assert not busy.runs.exists()


def test_a_server_that_lists_a_busy_port_waits_for_the_next_sweep(department, scheduling, clock, published):
    host = ["10.9.9.9"]
    first = registered_server(department, 1, START - 2 * WEEK, addresses=host, more_ports=[587])
    on_587 = registered_server(department, 2, START - 2 * WEEK, addresses=host, port=587)
    on_465 = registered_server(department, 3, START - 2 * WEEK, addresses=host, port=465)
    listed = registered_server(department, 4, START - 2 * WEEK, addresses=["10.8.8.8"], more_ports=[587])
    factories.make_run(
        registered_server(department, 5, START, addresses=["10.8.8.8"], port=587), status=Status.RUNNING
    )  # another server's run tests the port that `listed` lists

    tasks.schedule_retests.apply()

    assert set(scheduled_runs().values_list("server_id", flat=True)) == {first.pk, on_465.pk}
    assert not on_587.runs.exists()
    assert not listed.runs.exists()


def test_the_period_is_the_servers_else_the_departments_else_the_portals(
    department, other_department, scheduling, clock
):
    tested = START - timedelta(days=3)
    portal = registered_server(department, 1, tested)
    own = registered_server(department, 2, tested, retest_every=timedelta(days=1))
    off = registered_server(department, 3, tested, retest_every=timedelta(0))
    other_department.retest_every = timedelta(days=2)
    other_department.save()
    by_department = registered_server(other_department, 4, tested)
    untested = registered_server(department, 5, None)

    next_due = dict(schedule.with_next_due(MailServer.objects.all()).values_list("pk", "next_due"))

    assert next_due[portal.pk] == tested + WEEK
    assert next_due[own.pk] == tested + timedelta(days=1)
    assert next_due[off.pk] is None
    assert next_due[by_department.pk] == tested + timedelta(days=2)
    assert next_due[untested.pk] == START - 2 * WEEK + WEEK  # from its registration
    assert {s.pk for s in schedule.due_servers()} == {own.pk, by_department.pk, untested.pk}


def test_the_portals_period_0_turns_the_schedule_off(department, scheduling, clock, published):
    scheduling.RELAYTEST_RETEST_EVERY = 0
    registered_server(department, 1, START - 2 * WEEK)
    department.retest_every = timedelta(days=1)
    department.save()
    kept = registered_server(
        factories.make_department("Biology"), 2, START - 2 * WEEK
    )  # no period of its own: off

    assert tasks.schedule_retests.apply().get() == 1
    assert not kept.runs.exists()


def test_a_scheduled_run_shows_schedule_as_its_trigger_and_the_pages_show_next_due(
    server, member, staff, scheduling, clock, published
):
    MailServer.objects.filter(pk=server.pk).update(created_at=START - 2 * WEEK)
    tasks.schedule_retests.apply()
    run = scheduled_runs().get()
    assert run.started_by is None and run.status == Status.QUEUED
    assert "Schedule" in client_for(member).get(run.get_absolute_url()).content.decode()
    finish_queued_runs()

    page = client_for(member).get(server.get_absolute_url()).content.decode()
    assert "Next scheduled test" in page and "2026-11-09" in page  # a week after the run
    for url in (f"/departments/{server.department.slug}/", "/overview/"):
        listed = client_for(staff).get(url).content.decode()
        assert "Next due" in listed and "2026-11-09" in listed


def test_central_it_sets_the_periods_in_the_admin(server, staff):
    staff.is_superuser = True
    staff.save()
    client = client_for(staff)
    response = client.post(
        f"/admin/relaytests/department/{server.department.pk}/change/",
        {
            "name": server.department.name,
            "slug": server.department.slug,
            "contact_email": "",
            "retest_every": "1 00:00:00",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    server.department.refresh_from_db()
    assert server.department.retest_every == timedelta(days=1)

    form = client.get(f"/admin/relaytests/mailserver/{server.pk}/change/").content.decode()
    assert 'name="retest_every"' in form


def test_beat_sends_the_sweep_every_sweep_period(settings):
    settings.RELAYTEST_SCHEDULE_SWEEP_EVERY = 123
    beat = Celery("beat-test", set_as_current=False)  # the tasks stay bound to the portal's app

    portal_celery.schedule_periodic_tasks(beat)

    entry = beat.conf.beat_schedule["schedule re-tests"]
    assert (entry["task"], entry["schedule"]) == ("relaytests.tasks.schedule_retests", 123)
    assert entry["options"]["expires"] == 123  # a sweep missed is skipped, not piled up


def test_the_overview_shows_the_counts_30_days_ago_and_the_weeks_changes(department, staff, clock):
    old, fixed, new = (registered_server(department, n, None) for n in range(3))
    MailServer.objects.update(created_at=START - timedelta(days=60))
    clock.now = START - timedelta(days=40)
    factories.make_run(old, verdict="open_relay")
    factories.make_run(fixed, verdict="open_relay")
    clock.now = START - timedelta(days=3)
    opened = factories.make_run(fixed, verdict="secure")
    VerdictChange.objects.create(server=fixed, run=opened, old_verdict="open_relay", new_verdict="secure")
    clock.now = START
    MailServer.objects.filter(pk=new.pk).update(created_at=START - timedelta(days=1))  # not there then

    response = client_for(staff).get("/overview/")

    counts = {css: (now, then) for css, _, now, then in response.context["counts"]}
    assert counts["open_relay"] == (1, 2) and counts["secure"] == (1, 0) and counts["untested"] == (1, 0)
    page = response.content.decode()
    assert "30 days ago: 2" in page and "Changed in the last week" in page
    assert [change.server for change in response.context["changes"]] == [fixed]
