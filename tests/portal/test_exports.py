"""CSV exports of the overview, a department's servers and a server's history: the pages' rules of who
sees what, their filters and order, streamed, and read back row by row with the csv module."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from relaytests.models import TestRun
from tests.portal.conftest import client_for
from tests.portal.factories import make_run, make_server

pytestmark = pytest.mark.django_db


def rows_of(response) -> list[dict]:
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def exports(server, department):
    return {
        "overview": reverse("relaytests:overview-csv"),
        "department": reverse("relaytests:department-csv", args=[department.slug]),
        "history": reverse("relaytests:server-history-csv", args=[server.pk]),
    }


WHO_GETS_WHAT = {
    "anonymous": {"overview": 302, "department": 302, "history": 302},
    "outsider": {"overview": 404, "department": 404, "history": 404},
    "member": {"overview": 404, "department": 200, "history": 200},
    "staff": {"overview": 200, "department": 200, "history": 200},
}


@pytest.mark.parametrize("persona", WHO_GETS_WHAT)
@pytest.mark.parametrize("export", ["overview", "department", "history"])
def test_each_export_is_for_whom_its_page_is_for(personas, exports, persona, export):
    response = client_for(personas[persona]).get(exports[export])

    assert response.status_code == WHO_GETS_WHAT[persona][export]
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("login"))


def test_the_overview_lists_the_worst_first_and_keeps_its_filter(staff, server, department, other_department):
    make_run(server, verdict="secure")
    relay = make_server(other_department, target="mx.chemistry.example.edu", addresses=["192.0.2.26"])
    run = make_run(relay, verdict="open_relay")
    make_server(department, target="new.physics.example.edu")
    client = client_for(staff)

    every = rows_of(client.get(reverse("relaytests:overview-csv")))
    relays = rows_of(client.get(reverse("relaytests:overview-csv"), {"verdict": "open_relay"}))

    assert [(r["server"], r["verdict"]) for r in every] == [
        ("mx.chemistry.example.edu", "open_relay"),
        ("new.physics.example.edu", "untested"),
        ("mail.physics.example.edu", "secure"),
    ]
    assert relays == [
        {
            "department": "chemistry",
            "server": "mx.chemistry.example.edu",
            "kind": "host",
            "port": "25",
            "more_ports": "",
            "mail_domain": "",
            "addresses": "192.0.2.26",
            "verdict": "open_relay",
            "blocklisted": "no",
            "last_tested_at": run.created_at.isoformat(),
            "certificate_expires_at": "",
            "latest_run": str(run.pk),
            "active_run_status": "",
            "relays_only_from": "",
            "page": f"http://testserver{relay.get_absolute_url()}",
        }
    ]


def test_a_servers_other_ports_are_a_column_of_the_export(staff, department):
    make_server(department, target="mail.physics.example.edu", more_ports=[587, 465])

    (row,) = rows_of(client_for(staff).get(reverse("relaytests:overview-csv")))

    assert (row["port"], row["more_ports"]) == ("25", "587 465")


def test_a_department_export_holds_its_servers_only_with_their_run_in_progress(
    member, server, department, other_department
):
    make_server(other_department, target="mx.chemistry.example.edu")
    make_run(server, status=TestRun.Status.RUNNING)

    rows = rows_of(client_for(member).get(reverse("relaytests:department-csv", args=[department.slug])))

    assert [(r["server"], r["active_run_status"]) for r in rows] == [("mail.physics.example.edu", "running")]


def test_a_servers_history_lists_every_run_newest_first(member, server):
    first = make_run(server, verdict="open_relay", started_by=member)
    second = make_run(server, verdict="secure", status_reason="=HYPERLINK(1)")

    rows = rows_of(client_for(member).get(reverse("relaytests:server-history-csv", args=[server.pk])))

    assert [r["run"] for r in rows] == [str(second.pk), str(first.pk)]
    assert (rows[1]["verdict"], rows[1]["started_by"], rows[1]["trigger"]) == (
        "open_relay",
        "alice",
        "manual",
    )
    assert rows[0]["status_reason"] == "'=HYPERLINK(1)"  # a spreadsheet shows it, never runs it
    assert rows[0]["page"] == f"http://testserver{second.get_absolute_url()}"


def test_a_long_history_is_read_in_a_fixed_number_of_queries(member, server, django_assert_max_num_queries):
    for _ in range(30):
        make_run(server, verdict="secure", started_by=member)
    response = client_for(member).get(reverse("relaytests:server-history-csv", args=[server.pk]))

    with django_assert_max_num_queries(2):
        assert len(rows_of(response)) == 30
