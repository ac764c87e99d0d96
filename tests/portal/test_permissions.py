"""The matrix: every page and action of a server and of a run, for each persona.

Outsiders get a 404 (never a 403 that confirms the server exists), anonymous visitors are sent
to sign in, the department's members and central IT staff get the page or the action.
"""

import pytest
from django.urls import reverse

from relaytests.models import TestRun
from tests.portal.conftest import client_for
from tests.portal.factories import make_run

pytestmark = pytest.mark.django_db

# (url name, method, which object's pk): every per-object page and action of the portal.
PAGES = [
    ("relaytests:server", "get", "server"),
    ("relaytests:server-test", "post", "server"),
    ("relaytests:run", "get", "run"),
    ("relaytests:run-live", "get", "run"),
    ("relaytests:run-retest", "post", "run"),
]
# What each persona gets: GET pages answer 200, POST actions redirect to the new run.
EXPECTED = {
    "anonymous": {"get": 302, "post": 302},
    "outsider": {"get": 404, "post": 404},
    "member": {"get": 200, "post": 302},
    "staff": {"get": 200, "post": 302},
}


@pytest.fixture
def objects(server):
    run = make_run(server, verdict="secure")
    return {"server": server, "run": run}


@pytest.mark.parametrize("persona", EXPECTED)
@pytest.mark.parametrize("name, method, kind", PAGES)
def test_each_persona_gets_the_expected_answer(personas, objects, persona, name, method, kind):
    url = reverse(name, args=[objects[kind].pk])
    runs_before = TestRun.objects.count()

    response = getattr(client_for(personas[persona]), method)(url)

    assert response.status_code == EXPECTED[persona][method]
    if persona == "anonymous":
        assert response["Location"] == f"{reverse('login')}?next={url}"
    started = TestRun.objects.count() - runs_before
    assert started == (1 if response.status_code == 302 and persona != "anonymous" else 0)
    if started:
        new_run = TestRun.objects.latest("pk")
        assert response["Location"] == new_run.get_absolute_url()
        assert new_run.started_by == personas[persona]


@pytest.mark.parametrize(
    "persona, status", [("anonymous", 302), ("outsider", 404), ("member", 200), ("staff", 200)]
)
def test_a_department_page_is_for_its_members_and_staff(personas, department, persona, status):
    response = client_for(personas[persona]).get(reverse("relaytests:department", args=[department.slug]))

    assert response.status_code == status


@pytest.mark.parametrize(
    "persona, status", [("anonymous", 302), ("outsider", 404), ("member", 404), ("staff", 200)]
)
def test_the_overview_of_every_department_is_for_central_it_only(personas, persona, status):
    assert client_for(personas[persona]).get(reverse("relaytests:overview")).status_code == status


@pytest.mark.parametrize("name", ["relaytests:server-test", "relaytests:run-retest"])
def test_actions_refuse_get(member, objects, name):
    kind = "server" if name == "relaytests:server-test" else "run"

    response = client_for(member).get(reverse(name, args=[objects[kind].pk]))

    assert response.status_code == 405
    assert TestRun.objects.count() == 1


def test_an_outsider_sees_nothing_of_another_departments_servers_on_their_pages(personas, server, objects):
    client = client_for(personas["outsider"])

    for url in (reverse("relaytests:home"), reverse("relaytests:register")):
        page = client.get(url).content.decode()
        assert server.target not in page
        assert "Physics" not in page
