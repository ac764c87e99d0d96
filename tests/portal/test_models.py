"""The data model's own rules: one active run per server, verdict changes, durations, order."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from relaytests.models import MailServer, TestRun, Verdict, VerdictChange
from relaytests.probe import vocabulary
from tests.portal.factories import make_run, make_server, report

pytestmark = pytest.mark.django_db
Status = TestRun.Status


@pytest.mark.parametrize("active", [Status.QUEUED, Status.RUNNING])
@pytest.mark.parametrize("second", [Status.QUEUED, Status.RUNNING])
def test_a_server_cannot_have_two_active_runs(server, active, second):
    make_run(server, status=active)

    with pytest.raises(IntegrityError), transaction.atomic():
        make_run(server, status=second)

    assert server.runs.count() == 1


def test_finished_runs_do_not_block_a_new_one_and_other_servers_are_independent(server, department):
    for status in (Status.DONE, Status.FAILED, Status.INTERRUPTED, Status.AWAITING_DELIVERY):
        make_run(server, status=status)
    make_run(server, status=Status.QUEUED)
    make_run(make_server(department, target="mx2.physics.example.edu"), status=Status.QUEUED)

    assert TestRun.objects.filter(status=Status.QUEUED).count() == 2


def test_an_active_run_can_end_and_then_another_can_start(server):
    run = make_run(server, status=Status.RUNNING)
    TestRun.objects.filter(pk=run.pk).update(status=Status.DONE)

    assert make_run(server, status=Status.QUEUED).is_active


def test_the_same_target_port_and_kind_is_registered_once(server, department):
    with pytest.raises(IntegrityError), transaction.atomic():
        MailServer.objects.create(
            department=department, target=server.target, port=server.port, kind=server.kind
        )


def test_a_servers_ports_are_its_targets_then_the_others_it_lists_each_once(department):
    assert make_server(department, target="mx1.physics.example.edu").ports == [25]
    listed = make_server(department, target="mx2.physics.example.edu", port=587, more_ports=[465, 587, 25])
    assert listed.ports == [587, 465, 25]
    assert MailServer.objects.get(pk=listed.pk).more_ports == [465, 587, 25]


@pytest.mark.parametrize("status, active", [(s, s in ("queued", "running")) for s in Status.values])
def test_only_queued_and_running_runs_are_active(server, status, active):
    assert make_run(server, status=status).is_active is active


def test_duration_is_known_once_a_run_has_started_and_finished(server):
    start = timezone.now()
    run = make_run(server, started_at=start)
    assert run.duration is None

    run.finished_at = start + timedelta(seconds=75)
    assert run.duration == timedelta(seconds=75)


def test_runs_are_listed_newest_first(server):
    first, second, third = (make_run(server) for _ in range(3))

    assert list(server.runs.all()) == [third, second, first]


def test_a_verdict_change_is_recorded_against_the_previous_run_with_a_verdict(server):
    make_run(server, verdict="secure")
    make_run(server, status=Status.FAILED)  # no verdict: not a comparison point
    regressed = make_run(server, verdict="open_relay")

    change = regressed.record_verdict_change()

    assert (change.old_verdict, change.new_verdict, change.run, change.server) == (
        "secure",
        "open_relay",
        regressed,
        server,
    )


def test_the_first_verdict_of_a_server_is_a_change_from_nothing_and_a_repeat_is_none(server):
    first = make_run(server, verdict="secure")
    assert first.record_verdict_change().old_verdict == ""

    assert make_run(server, verdict="secure").record_verdict_change() is None
    assert VerdictChange.objects.count() == 1


def test_a_verdict_so_far_writes_no_change_and_the_final_one_does(server):
    make_run(server, verdict="secure")
    waiting = make_run(server, status=Status.AWAITING_DELIVERY, verdict="accepts_relay")

    waiting.record_verdict()
    assert not VerdictChange.objects.exists()

    TestRun.objects.filter(pk=waiting.pk).update(status=Status.DONE)
    waiting.refresh_from_db()
    waiting.record_verdict()
    assert VerdictChange.objects.values_list("old_verdict", "new_verdict").get() == (
        "secure",
        "accepts_relay",
    )


def test_the_verdict_choices_are_the_engines_values_and_labels():
    assert Verdict.choices == [(verdict.value, verdict.label) for verdict in vocabulary.Verdict]
    assert TestRun._meta.get_field("verdict").choices == Verdict.choices


def test_only_the_move_to_open_relay_of_a_late_upgraded_run_is_marked_late(server):
    run = make_run(server, verdict="open_relay", upgraded_late=True)
    first = VerdictChange.objects.create(server=server, run=run, old_verdict="", new_verdict="accepts_relay")
    upgrade = VerdictChange.objects.create(
        server=server, run=run, old_verdict="accepts_relay", new_verdict="open_relay"
    )
    assert (first.upgraded_late, upgrade.upgraded_late) == (False, True)


def test_the_report_is_parsed_once_and_again_only_when_it_is_replaced(server):
    run = make_run(server, verdict="secure", report=report("secure"))

    assert run.parsed_report is run.parsed_report
    assert run.parsed_report.verdict == "secure"

    run.report = report("open_relay")
    assert run.parsed_report.verdict == "open_relay"
    run.refresh_from_db()
    assert run.parsed_report.verdict == "secure"


def test_the_migrations_describe_the_models():
    """The SQLite test databases are made from the models (tests/settings.py): a model change without
    its migration would pass every test there and fail on a real database."""
    output = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=output)
    except SystemExit:
        pytest.fail(f"a model has changes no migration makes:\n{output.getvalue()}")
    assert output.getvalue() == "No changes detected\n"
