"""The JSON API: the pages' matrix (anonymous 401, outsider 404, member and central IT the answer),
the registration form's errors, the run caps, the report as stored, verdict changes and the counts.

Requests carry a personal token (`Authorization: Bearer`), as the API's clients do. Starting a run
publishes from an on_commit hook, which a test's transaction captures: no broker is reached except
by the test of a dead one.
"""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from relaytests import runs, tokens
from relaytests.forms import RegisterServerForm
from relaytests.models import ApiToken, Department, MailServer, TestRun, VerdictChange
from tests.portal.factories import check, host, make_department, make_run, make_server, report, vector
from tests.portal.worker import loopback_server, publishing_to

pytestmark = pytest.mark.django_db
Status = TestRun.Status


def api_for(user) -> APIClient:
    """A client that sends a fresh token of `user` (none for anonymous)."""
    client = APIClient()
    if user is not None:
        _token, text = tokens.issue(user, "test")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {text}")
    return client


@pytest.fixture
def objects(server):
    stored = report(
        "open_relay",
        hosts=[host(verdict="open_relay", vectors=[vector("plain", "accepted", delivered=True)])],
        checks=[check("mx", "pass")],
    )
    run = make_run(server, verdict="open_relay", report=stored)
    change = VerdictChange.objects.create(
        server=server, run=run, old_verdict="secure", new_verdict="open_relay"
    )
    return {"server": server, "run": run, "change": change}


# ---- who sees what: every endpoint of one object, for each persona ----

OBJECT_ENDPOINTS = [
    ("get", "/api/servers/{server}/"),
    ("get", "/api/runs/{run}/"),
    ("get", "/api/runs/{run}/report/"),
    ("post", "/api/servers/{server}/test/"),
]
EXPECTED = {
    "anonymous": {"get": 401, "post": 401},
    "outsider": {"get": 404, "post": 404},
    "member": {"get": 200, "post": 201},
    "staff": {"get": 200, "post": 201},
}


@pytest.mark.parametrize("persona", EXPECTED)
@pytest.mark.parametrize("method, path", OBJECT_ENDPOINTS)
def test_each_persona_gets_what_the_pages_give_it(personas, objects, persona, method, path):
    url = path.format(server=objects["server"].pk, run=objects["run"].pk)

    response = getattr(api_for(personas[persona]), method)(url)

    assert response.status_code == EXPECTED[persona][method]
    if persona == "anonymous":
        assert response["WWW-Authenticate"].startswith("Bearer")
    started = TestRun.objects.filter(trigger=TestRun.Trigger.API)
    assert started.count() == (1 if response.status_code == 201 else 0)


LISTS = ["/api/departments/", "/api/servers/", "/api/runs/", "/api/verdict-changes/"]
EVERY_ENDPOINT = [
    *OBJECT_ENDPOINTS,
    *(("get", url) for url in LISTS),
    ("get", "/api/dashboard/"),
    ("post", "/api/servers/"),
]


@pytest.mark.parametrize("spoilt", ["expired", "revoked"])
@pytest.mark.parametrize("method, path", EVERY_ENDPOINT)
def test_an_expired_or_revoked_token_opens_no_endpoint(staff, objects, spoilt, method, path):
    token, text = tokens.issue(staff, "spoilt")
    now = timezone.now()
    ApiToken.objects.filter(pk=token.pk).update(
        **({"expires_at": now} if spoilt == "expired" else {"revoked_at": now})
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {text}")

    response = getattr(client, method)(path.format(server=objects["server"].pk, run=objects["run"].pk))

    assert response.status_code == 401
    assert not TestRun.objects.filter(trigger=TestRun.Trigger.API).exists()


SEEN = {"anonymous": None, "outsider": 0, "member": 1, "staff": 2}  # of each list: Physics and Chemistry


@pytest.mark.parametrize("persona", SEEN)
@pytest.mark.parametrize("url", LISTS)
def test_each_list_holds_what_the_persona_may_see(personas, objects, other_department, persona, url):
    elsewhere = make_server(other_department, target="mail.chemistry.example.edu")
    VerdictChange.objects.create(
        server=elsewhere, run=make_run(elsewhere, verdict="secure"), old_verdict="", new_verdict="secure"
    )
    other_department.memberships.all().delete()  # the outsider sees no department at all

    response = api_for(personas[persona]).get(url)

    if SEEN[persona] is None:
        assert response.status_code == 401
    else:
        assert response.status_code == 200
        assert response.json()["count"] == SEEN[persona]


@pytest.mark.parametrize(
    "persona, status", [("anonymous", 401), ("outsider", 404), ("member", 404), ("staff", 200)]
)
def test_the_dashboard_counts_are_for_central_it_only(personas, objects, persona, status):
    assert api_for(personas[persona]).get("/api/dashboard/").status_code == status


def test_the_dashboard_counts_servers_by_their_verdict_now(staff, objects, department):
    make_server(department, target="new.physics.example.edu")
    make_server(department, target="bad.physics.example.edu", blocklisted=True, latest_verdict="secure")

    body = api_for(staff).get("/api/dashboard/").json()

    assert body["servers"] == 3
    assert body["counts"] == {
        "open_relay": 1,
        "accepts_relay": 0,
        "inconclusive": 0,
        "secure": 1,
        "untested": 1,
        "blocklisted": 1,
    }


def test_a_server_shows_its_state_and_its_run_in_progress(member, objects):
    server = objects["server"]
    MailServer.objects.filter(pk=server.pk).update(latest_verdict="open_relay")
    active = make_run(server, status=Status.RUNNING)

    body = api_for(member).get(f"/api/servers/{server.pk}/").json()

    assert body["department"] == "physics"
    assert (body["latest_run"], body["latest_verdict"], body["active_run"]) == (
        objects["run"].pk,
        "open_relay",
        active.pk,
    )
    assert body["page"] == f"http://testserver{server.get_absolute_url()}"


def test_lists_filter_by_their_query_and_refuse_a_bad_one_by_name(staff, objects, department):
    make_server(department, target="new.physics.example.edu")
    client = api_for(staff)

    untested = client.get("/api/servers/", {"verdict": "untested"}).json()
    runs_of_server = client.get("/api/runs/", {"server": objects["server"].pk, "status": "done"}).json()
    bad = client.get("/api/servers/", {"verdict": "purple"})

    assert [s["target"] for s in untested["results"]] == ["new.physics.example.edu"]
    assert [r["id"] for r in runs_of_server["results"]] == [objects["run"].pk]
    assert bad.status_code == 400
    assert list(bad.json()) == ["verdict"]


@pytest.mark.parametrize("url", LISTS)
def test_a_list_takes_the_same_queries_for_a_few_rows_as_for_a_page(staff, url, django_assert_num_queries):
    def add(number):
        for _ in range(number):
            server = make_server(
                make_department(f"Dept {Department.objects.count()}"),
                target=f"mx{MailServer.objects.count()}.example.edu",
            )
            run = make_run(server, verdict="secure")
            VerdictChange.objects.create(server=server, run=run, old_verdict="", new_verdict="secure")

    client = api_for(staff)
    add(2)
    client.get(url)  # the token's first use is noted once

    with CaptureQueriesContext(connection) as few:
        assert client.get(url).json()["count"] == 2
    add(40)
    with django_assert_num_queries(len(few.captured_queries)):
        assert client.get(url).json()["count"] == 42


# ---- the report ----


def test_the_report_is_the_stored_relaytest_json_unchanged(member, objects):
    run = objects["run"]

    response = api_for(member).get(f"/api/runs/{run.pk}/report/")

    assert response["Content-Type"] == "application/json"
    assert response.json() == TestRun.objects.get(pk=run.pk).report
    assert response.json()["schema"] == "relaytest/1"


def test_a_run_shows_its_state_without_its_report(member, objects):
    body = api_for(member).get(f"/api/runs/{objects['run'].pk}/").json()

    assert (body["status"], body["verdict"], body["server"]) == ("done", "open_relay", objects["server"].pk)
    assert "report" not in body


# ---- verdict changes since a time ----


def test_verdict_changes_since_a_time_are_listed_oldest_first(member, objects, server):
    now = timezone.now()
    old = objects["change"]
    VerdictChange.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=2))
    newer = VerdictChange.objects.create(
        server=server, run=objects["run"], old_verdict="open_relay", new_verdict="secure"
    )
    VerdictChange.objects.filter(pk=newer.pk).update(created_at=now - timedelta(hours=1))
    newest = VerdictChange.objects.create(
        server=server, run=objects["run"], old_verdict="secure", new_verdict="open_relay"
    )
    client = api_for(member)

    since = client.get("/api/verdict-changes/", {"since": (now - timedelta(days=1)).isoformat()}).json()
    every = client.get("/api/verdict-changes/").json()

    assert [c["id"] for c in since["results"]] == [newer.pk, newest.pk]
    assert [c["id"] for c in every["results"]] == [old.pk, newer.pk, newest.pk]
    assert since["results"][0] | {"created_at": None} == {
        "id": newer.pk,
        "server": server.pk,
        "target": "mail.physics.example.edu",
        "department": "physics",
        "run": objects["run"].pk,
        "old_verdict": "open_relay",
        "new_verdict": "secure",
        "created_at": None,
    }


def test_a_since_that_is_no_time_is_refused_with_a_reason(member):
    response = api_for(member).get("/api/verdict-changes/", {"since": "last tuesday"})

    assert response.status_code == 400
    assert "since" in response.json()


# ---- registering: the form's rules and words ----


@pytest.fixture
def loopback_scope(settings):
    settings.RELAYTEST_SCOPE_NETWORKS = ["127.0.0.0/8"]


@pytest.mark.parametrize(
    "persona, status", [("anonymous", 401), ("outsider", 400), ("member", 201), ("staff", 201)]
)
def test_a_server_is_registered_for_a_department_by_its_members_and_central_it(
    personas, department, loopback_scope, persona, status
):
    response = api_for(personas[persona]).post(
        "/api/servers/", {"department": "physics", "target": "127.0.0.7"}, format="json"
    )

    assert response.status_code == status
    assert MailServer.objects.filter(department=department).count() == (1 if status == 201 else 0)


def test_registering_creates_the_server_as_the_form_does(member, department, loopback_scope):
    response = api_for(member).post(
        "/api/servers/", {"department": "physics", "target": "127.0.0.7"}, format="json"
    )

    server = MailServer.objects.get()
    assert response.status_code == 201
    assert (server.target, server.kind, server.addresses, server.created_by) == (
        "127.0.0.7",
        "ip",
        ["127.0.0.7"],
        member,
    )
    assert response.json()["id"] == server.pk


def test_a_server_registered_with_more_ports_shows_them(member, department, loopback_scope):
    response = api_for(member).post(
        "/api/servers/",
        {"department": "physics", "target": "127.0.0.7", "more_ports": [587, 465]},
        format="json",
    )

    assert response.status_code == 201
    assert (response.json()["port"], response.json()["more_ports"]) == (25, [587, 465])
    assert MailServer.objects.get().ports == [25, 587, 465]
    shown = api_for(member).get(f"/api/servers/{response.json()['id']}/").json()
    assert shown["more_ports"] == [587, 465]


def test_a_port_outside_the_allowed_ports_is_refused_naming_them(
    member, department, loopback_scope, settings
):
    settings.RELAYTEST_ALLOWED_PORTS = [25, 587]

    response = api_for(member).post(
        "/api/servers/",
        {"department": "physics", "target": "127.0.0.7", "more_ports": [465]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {"more_ports": ["Port 465 is not one this portal tests (25, 587)."]}
    assert not MailServer.objects.exists()


@pytest.mark.parametrize("more_ports", ["587", [587, "x"], [{}], {"a": 587}])
def test_more_ports_that_are_no_list_of_numbers_are_one_message(
    member, department, loopback_scope, more_ports
):
    response = api_for(member).post(
        "/api/servers/",
        {"department": "physics", "target": "127.0.0.7", "more_ports": more_ports},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {"more_ports": ["List the ports as whole numbers, e.g. [587, 465]."]}


@pytest.mark.parametrize(
    "data",
    [
        {"target": "http://mail.physics.example.edu/"},
        {"target": "mail.physics.example.edu 587"},
        {"target": "127.0.0.7:99"},
        {"target": "10.1.2.3"},
        {"target": ""},
        {"target": "127.0.0.7", "mail_domain": "physics.example.edu:25"},
        {"target": "127.0.0.7", "what": "domain"},
        {"target": "127.0.0.7", "more_ports": [587, 6379]},
    ],
)
def test_a_refused_registration_says_what_the_form_says(member, department, loopback_scope, data):
    form = RegisterServerForm(
        {"department": department.pk, "what": "server", **data}, departments=Department.objects.all()
    )

    response = api_for(member).post("/api/servers/", {"department": "physics", **data}, format="json")

    assert not form.is_valid()
    assert response.status_code == 400
    assert response.json() == form.errors
    assert not MailServer.objects.exists()


def test_a_server_registered_already_is_refused_naming_no_department(
    member, department, other_department, loopback_scope
):
    loopback_server(other_department, "127.0.0.7")

    response = api_for(member).post(
        "/api/servers/", {"department": "physics", "target": "127.0.0.7"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["target"][0].startswith("127.0.0.7 is registered already.")
    assert "Chemistry" not in response.text


def test_nobody_registers_for_a_department_they_are_not_in(
    outsider, department, other_department, loopback_scope
):
    response = api_for(outsider).post(
        "/api/servers/", {"department": "physics", "target": "127.0.0.7"}, format="json"
    )

    assert response.status_code == 400
    assert "department" in response.json()
    assert not MailServer.objects.exists()


@pytest.mark.parametrize("body", [["127.0.0.7"], {"target": ["127.0.0.7"]}, {"target": {"a": 1}}, "text"])
def test_a_registration_of_the_wrong_shape_is_a_400_not_a_500(member, department, body):
    response = api_for(member).post("/api/servers/", body, format="json")

    assert response.status_code == 400


# ---- starting a test: the caps and the one active run ----


def test_starting_a_test_queues_a_run_marked_as_from_the_api(
    member, server, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as enqueued:
        response = api_for(member).post(f"/api/servers/{server.pk}/test/")

    run = TestRun.objects.get()
    assert response.status_code == 201
    assert response["Location"] == f"/api/runs/{run.pk}/"
    assert (run.status, run.trigger, run.started_by) == (Status.QUEUED, "api", member)
    assert response.json()["id"] == run.pk
    assert response.json()["page"] == f"http://testserver{run.get_absolute_url()}"
    assert len(enqueued) == 1


def test_a_server_with_a_run_queued_or_running_gets_no_second_run(member, server):
    active = make_run(server, status=Status.RUNNING)

    response = api_for(member).post(f"/api/servers/{server.pk}/test/")

    assert response.status_code == 409
    assert response.json()["detail"] == "A test of this server is already queued or running; here it is."
    assert response.json()["run"]["id"] == active.pk
    assert server.runs.count() == 1


def test_a_user_over_the_hourly_cap_is_refused_with_the_time_they_may_start_again(
    member, department, server, settings
):
    settings.RELAYTEST_RUNS_PER_HOUR = 1
    make_run(make_server(department, target="mx2.physics.example.edu"), started_by=member)

    response = api_for(member).post(f"/api/servers/{server.pk}/test/")

    assert response.status_code == 429
    assert response.json()["detail"].startswith(
        "You have started 1 tests in the last hour, the most allowed."
    )
    assert server.runs.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_dead_broker_fails_the_run_at_once_and_says_so(member, department):
    server = loopback_server(department)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]

    with publishing_to(f"redis://127.0.0.1:{port}/0"):
        response = api_for(member).post(f"/api/servers/{server.pk}/test/")

    run = server.runs.get()
    assert response.status_code == 503
    assert response.json()["detail"] == runs.BROKER_UNREACHABLE
    assert (response.json()["run"]["id"], run.status) == (run.pk, Status.FAILED)


@pytest.mark.parametrize("query", [{"since": ""}, {"since": "2026-13-01"}])
def test_an_empty_or_impossible_parameter_is_refused_not_ignored(member, query):
    response = api_for(member).get("/api/verdict-changes/", query)

    assert response.status_code == 400
    assert list(response.json()) == ["since"]


@pytest.mark.parametrize(
    "method, url", [("get", "/api/servers/x/"), ("post", "/api/servers/1,2/test/"), ("get", "/api/nope\n")]
)
def test_a_path_the_api_does_not_have_is_a_json_404(member, method, url):
    response = getattr(api_for(member), method)(url)

    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


def test_a_body_that_is_no_json_is_refused_in_one_sentence(member, department):
    response = api_for(member).post("/api/servers/", "\x00", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")


@pytest.mark.parametrize("page", ["", "last", "0", "2"])
def test_a_page_of_a_list_that_is_not_there_is_a_404(member, objects, page):
    response = api_for(member).get("/api/runs/", {"page": page})

    assert response.status_code == 404
    assert response.json()["detail"].startswith("Invalid page")
