"""The audit log: each change writes one entry naming who did what (through the real pages, the API and
the admin), central IT alone reads it, filtered and a page at a time, and downloads it as CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from relaytests import audit, runs, schedule, tokens
from relaytests.models import AuditEntry, Department, MailServer, TestRun
from tests.portal.conftest import client_for
from tests.portal.factories import make_department, make_run, make_server

pytestmark = pytest.mark.django_db
Action = AuditEntry.Action


@pytest.fixture
def loopback_scope(settings):
    settings.RELAYTEST_SCOPE_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def superuser(staff):
    staff.is_superuser = True
    staff.save()
    return staff


def only_entry(action: str) -> AuditEntry:
    (entry,) = AuditEntry.objects.filter(action=action)
    return entry


def what(entry: AuditEntry) -> tuple:
    return (entry.user, entry.username, entry.object_kind, entry.object_id, entry.department)


def bearer(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.issue(user, 'script')[1]}")
    return client


# ---- each action writes one entry ----


def test_registering_on_the_page_is_recorded(member, department, loopback_scope):
    response = client_for(member).post(
        reverse("relaytests:register"), {"department": department.pk, "what": "server", "target": "127.0.0.7"}
    )

    server = MailServer.objects.get()
    assert response.status_code == 302
    entry = only_entry(Action.SERVER_REGISTERED)
    assert what(entry) == (member, "alice", "mailserver", server.pk, department)
    assert entry.text == "127.0.0.7"


def test_registering_through_the_api_is_recorded(member, department, loopback_scope):
    response = bearer(member).post(
        "/api/servers/", {"department": "physics", "target": "127.0.0.7"}, format="json"
    )

    assert response.status_code == 201
    assert what(only_entry(Action.SERVER_REGISTERED)) == (
        member,
        "alice",
        "mailserver",
        response.json()["id"],
        department,
    )


def test_a_refused_registration_records_nothing(member, department, settings):
    settings.RELAYTEST_SCOPE_NETWORKS = []
    client_for(member).post(
        reverse("relaytests:register"), {"department": department.pk, "what": "server", "target": "127.0.0.7"}
    )

    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("button", ["test", "retest", "api"])
def test_starting_a_run_is_recorded_with_its_trigger(member, server, department, button):
    if button == "test":
        client_for(member).post(reverse("relaytests:server-test", args=[server.pk]))
    elif button == "retest":
        finished = make_run(server, verdict="secure")
        client_for(member).post(reverse("relaytests:run-retest", args=[finished.pk]))
    else:
        assert bearer(member).post(f"/api/servers/{server.pk}/test/").status_code == 201

    run = TestRun.objects.filter(status=TestRun.Status.QUEUED).get()
    entry = only_entry(Action.RUN_STARTED)
    assert what(entry) == (member, "alice", "testrun", run.pk, department)
    assert entry.text == f"{server} ({run.get_trigger_display()})"


def test_a_refused_start_records_nothing(member, server):
    make_run(server, status=TestRun.Status.RUNNING)

    client_for(member).post(reverse("relaytests:server-test", args=[server.pk]))

    assert not AuditEntry.objects.filter(action=Action.RUN_STARTED).exists()


def test_a_scheduled_run_is_recorded_as_the_schedules(server, settings):
    settings.RELAYTEST_RETEST_EVERY = 3600
    MailServer.objects.filter(pk=server.pk).update(created_at=timezone.now() - timedelta(days=1))

    ((run, _delay),) = schedule.sweep()

    assert what(only_entry(Action.RUN_STARTED)) == (
        None,
        "the schedule",
        "testrun",
        run.pk,
        server.department,
    )


def test_creating_and_revoking_a_token_on_the_page_are_recorded(member):
    client = client_for(member)
    client.post(reverse("relaytests:tokens"), {"name": "ticket system"})
    token = member.api_tokens.get()
    client.post(reverse("relaytests:token-revoke", args=[token.pk]))
    client.post(reverse("relaytests:token-revoke", args=[token.pk]))  # revoked already: no second entry

    assert what(only_entry(Action.TOKEN_CREATED)) == (member, "alice", "apitoken", token.pk, None)
    assert what(only_entry(Action.TOKEN_REVOKED)) == (member, "alice", "apitoken", token.pk, None)
    assert "ticket system" in only_entry(Action.TOKEN_REVOKED).text


def test_central_it_revoking_a_users_token_in_the_admin_is_recorded_as_central_its(member, superuser):
    token, _text = tokens.issue(member, "leaked")

    client_for(superuser).post(
        reverse("admin:relaytests_apitoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]}
    )

    assert what(only_entry(Action.TOKEN_REVOKED)) == (superuser, "central", "apitoken", token.pk, None)


def server_form(server: MailServer, **changes) -> dict:
    fields = {"department": server.department.pk, "mail_domain": server.mail_domain, "retest_every": ""}
    return {**fields, **changes}


def test_moving_a_server_in_the_admin_is_recorded(server, other_department, superuser):
    response = client_for(superuser).post(
        reverse("admin:relaytests_mailserver_change", args=[server.pk]),
        server_form(server, department=other_department.pk),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    entry = only_entry(Action.SERVER_MOVED)
    assert what(entry) == (superuser, "central", "mailserver", server.pk, other_department)
    assert entry.text == f"{server}: Physics → Chemistry"
    assert not AuditEntry.objects.filter(action=Action.PERIOD_CHANGED).exists()


def test_changing_a_servers_period_in_the_admin_is_recorded(server, superuser):
    response = client_for(superuser).post(
        reverse("admin:relaytests_mailserver_change", args=[server.pk]), server_form(server, retest_every="0")
    )

    assert response.status_code == 302
    entry = only_entry(Action.PERIOD_CHANGED)
    assert what(entry) == (superuser, "central", "mailserver", server.pk, server.department)
    assert entry.text == f"{server}: inherited → off"
    assert not AuditEntry.objects.filter(action=Action.SERVER_MOVED).exists()


def test_changing_a_departments_period_in_the_admin_is_recorded(department, superuser):
    response = client_for(superuser).post(
        reverse("admin:relaytests_department_change", args=[department.pk]),
        {
            "name": department.name,
            "slug": department.slug,
            "contact_email": "",
            "retest_every": "1 00:00:00",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    entry = only_entry(Action.PERIOD_CHANGED)
    assert what(entry) == (superuser, "central", "department", department.pk, department)
    assert entry.text == "Physics: inherited → 1 day, 0:00:00"


def test_removing_a_server_in_the_admin_is_recorded(server, superuser):
    pk = server.pk
    response = client_for(superuser).post(
        reverse("admin:relaytests_mailserver_delete", args=[pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not MailServer.objects.exists()
    assert what(only_entry(Action.SERVER_REMOVED)) == (
        superuser,
        "central",
        "mailserver",
        pk,
        server.department,
    )


def test_removing_servers_with_the_admins_bulk_action_records_each(server, department, superuser):
    second = make_server(department, target="mx2.physics.example.edu")
    pks = [server.pk, second.pk]

    response = client_for(superuser).post(
        reverse("admin:relaytests_mailserver_changelist"),
        {"action": "delete_selected", "_selected_action": pks, "post": "yes"},
    )

    assert response.status_code == 302
    assert not MailServer.objects.exists()
    removed = AuditEntry.objects.filter(action=Action.SERVER_REMOVED)
    assert sorted(removed.values_list("object_id", flat=True)) == sorted(pks)


def test_a_change_whose_entry_cannot_be_written_is_not_kept_either(member, server, monkeypatch):
    def failing_record(*args, **kwargs):
        raise RuntimeError("the audit table is locked")

    monkeypatch.setattr(audit, "record", failing_record)
    with pytest.raises(RuntimeError):
        tokens.issue(member, "script")
    with pytest.raises(RuntimeError):
        runs.start(server, member, TestRun.Trigger.MANUAL)

    assert not member.api_tokens.exists() and not server.runs.exists()


def test_the_entry_outlives_its_user(member, server):
    audit.record(member, Action.RUN_STARTED, server, "kept")

    member.delete()

    entry = AuditEntry.objects.get()
    assert (entry.user, entry.username) == (None, "alice")


def test_the_admin_shows_the_log_and_changes_nothing(superuser, member):
    tokens.issue(member, "script")
    entry = AuditEntry.objects.get()
    client = client_for(superuser)

    assert client.get(reverse("admin:relaytests_auditentry_changelist")).status_code == 200
    assert client.get(reverse("admin:relaytests_auditentry_change", args=[entry.pk])).status_code == 200
    assert (
        client.post(reverse("admin:relaytests_auditentry_change", args=[entry.pk]), {"text": "x"}).status_code
        == 403
    )
    assert (
        client.post(
            reverse("admin:relaytests_auditentry_delete", args=[entry.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert AuditEntry.objects.get().text == entry.text


# ---- the page and its CSV ----


@pytest.mark.parametrize(
    "persona, status", [("anonymous", 302), ("outsider", 404), ("member", 404), ("staff", 200)]
)
@pytest.mark.parametrize("url", ["relaytests:audit-log", "relaytests:audit-csv"])
def test_the_log_is_for_central_it_only(personas, department, persona, status, url):
    assert client_for(personas[persona]).get(reverse(url)).status_code == status


def test_the_overview_links_to_the_log(staff):
    assert reverse("relaytests:audit-log") in client_for(staff).get(reverse("relaytests:overview")).text


@pytest.fixture
def entries(member, outsider, server, department, other_department):
    """Three entries, newest first: alice's registration in Physics, mallory's token, alice's run 3 days
    ago."""
    audit.record(outsider, Action.TOKEN_CREATED, server, "mallory's token")
    audit.record(member, Action.SERVER_REGISTERED, server, '=HYPERLINK("evil")', department)
    old = audit.record(member, Action.RUN_STARTED, server, "an old run", department)
    AuditEntry.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))


def texts(response) -> list[str]:
    return [entry.text for entry in response.context["entries"]]


@pytest.mark.parametrize(
    "query, shown",
    [
        ({}, ['=HYPERLINK("evil")', "mallory's token", "an old run"]),
        ({"action": "token_created"}, ["mallory's token"]),
        ({"department": "physics"}, ['=HYPERLINK("evil")', "an old run"]),
        ({"user": "Alice"}, ['=HYPERLINK("evil")', "an old run"]),
        ({"since": str(timezone.localdate())}, ['=HYPERLINK("evil")', "mallory's token"]),
        ({"until": str(timezone.localdate() - timedelta(days=1))}, ["an old run"]),
        ({"user": "alice", "action": "run_started"}, ["an old run"]),
    ],
)
def test_the_page_filters_the_entries(staff, entries, query, shown):
    response = client_for(staff).get(reverse("relaytests:audit-log"), query)

    assert response.status_code == 200
    assert texts(response) == shown


@pytest.mark.parametrize(
    "query, reason",
    [
        ({"since": "2026-12-05", "until": "2026-12-01"}, "The first day comes after the last one."),
        ({"since": "yesterday"}, "Enter a valid date."),
        ({"action": "hacked"}, "Select a valid choice."),
    ],
)
def test_a_bad_filter_is_named_not_a_500(staff, entries, query, reason):
    client = client_for(staff)
    page = client.get(reverse("relaytests:audit-log"), query)
    export = client.get(reverse("relaytests:audit-csv"), query)

    assert page.status_code == 200 and texts(page) == []
    assert reason in page.text
    assert export.status_code == 400 and reason in export.content.decode()


def test_the_page_is_paginated_keeping_its_filters(staff, member, server):
    for number in range(55):
        audit.record(member, Action.RUN_STARTED, server, f"run {number}")
    client = client_for(staff)

    first = client.get(reverse("relaytests:audit-log"), {"user": "alice"})
    second = client.get(reverse("relaytests:audit-log"), {"user": "alice", "page": "2"})

    assert len(texts(first)) == 50 and texts(second) == [f"run {n}" for n in range(4, -1, -1)]
    assert 'href="?user=alice&amp;page=2"' in first.text


def test_the_page_takes_the_same_queries_for_a_few_entries_as_for_a_page(
    staff, member, server, django_assert_num_queries
):
    def add(number):
        for _ in range(number):
            department = make_department(f"Dept {Department.objects.count()}")
            audit.record(member, Action.RUN_STARTED, server, "a run", department)

    client = client_for(staff)
    url = reverse("relaytests:audit-log")
    add(2)
    client.get(url)  # the session's first request

    with CaptureQueriesContext(connection) as few:
        assert len(client.get(url).context["entries"]) == 2
    add(48)
    with django_assert_num_queries(len(few.captured_queries)):
        assert len(client.get(url).context["entries"]) == 50


def test_the_csv_is_every_filtered_entry_row_by_row_formulas_neutralised(staff, entries, server):
    response = client_for(staff).get(reverse("relaytests:audit-csv"), {"user": "alice"})

    assert response.streaming and response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [list(row) for row in rows[:1]] == [
        ["when", "user", "action", "object_kind", "object_id", "department", "text"]
    ]
    assert [
        (r["user"], r["action"], r["object_kind"], r["object_id"], r["department"], r["text"]) for r in rows
    ] == [
        ("alice", "server_registered", "mailserver", str(server.pk), "physics", '\'=HYPERLINK("evil")'),
        ("alice", "run_started", "mailserver", str(server.pk), "physics", "an old run"),
    ]
    assert rows[0]["when"] > rows[1]["when"]


def test_central_it_sets_a_servers_other_ports_in_the_admin_among_the_allowed_ones(
    server, superuser, settings
):
    settings.RELAYTEST_ALLOWED_PORTS = [25, 465, 587]
    url = reverse("admin:relaytests_mailserver_change", args=[server.pk])
    client = client_for(superuser)

    refused = client.post(url, server_form(server, more_ports=["587", "2525"]))
    accepted = client.post(url, server_form(server, more_ports=["587", "25", "465"]))

    assert refused.status_code == 200
    assert "Port 2525 is not one this portal tests (25, 465, 587)." in refused.content.decode()
    assert accepted.status_code == 302
    server.refresh_from_db()
    assert (server.port, server.more_ports) == (25, [587, 465])  # the target's own port is not listed again
