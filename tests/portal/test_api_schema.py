"""The API's OpenAPI 3 schema validates and names every endpoint; its documentation page loads
nothing but our own static files and runs no inline script."""

from __future__ import annotations

import re

import pytest
import yaml
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db
ENDPOINTS = {
    "/api/departments/": {"get"},
    "/api/servers/": {"get", "post"},
    "/api/servers/{id}/": {"get"},
    "/api/servers/{id}/test/": {"post"},
    "/api/runs/": {"get"},
    "/api/runs/{id}/": {"get"},
    "/api/runs/{id}/report/": {"get"},
    "/api/verdict-changes/": {"get"},
    "/api/tokens/": {"post"},
    "/api/dashboard/": {"get"},
}
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S)
ASSET = re.compile(r'(?:src|href)="([^"]+)"')


def test_the_generated_schema_validates_without_a_warning(tmp_path):
    path = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))

    schema = yaml.safe_load(path.read_text())
    assert schema["openapi"].startswith("3.")
    assert {p: set(ops) - {"parameters"} for p, ops in schema["paths"].items()} == ENDPOINTS
    assert schema["components"]["securitySchemes"]["apiToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal API token from the portal's API tokens page.",
    }


def test_the_schema_is_served_at_api_schema_to_anyone():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    assert set(response.json()["paths"]) == set(ENDPOINTS)


def test_the_documentation_page_loads_only_our_static_files_and_no_inline_script():
    client = Client()

    page = client.get("/api/docs/")

    assert page.status_code == 200
    scripts = SCRIPT.findall(page.text)
    assert scripts and all(body.strip() == "" for _attributes, body in scripts)
    assets = ASSET.findall(page.text)
    static = [url for url in assets if url.startswith(settings.STATIC_URL)]
    assert len(static) == 4  # the icon, Swagger UI's style sheet and its two scripts
    assert all(finders.find(url.removeprefix(settings.STATIC_URL)) for url in static)
    [setup] = set(assets) - set(static)
    script = client.get(setup.replace("&amp;", "&"))
    assert script["Content-Type"].startswith("application/javascript")
    assert '"/api/schema/"' in script.text


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_documentation_page_shows_every_endpoint_in_chromium_under_our_policy(page, live_server):
    violations, elsewhere = [], []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security" in message.text else None,
    )
    page.on(
        "request",
        lambda request: None if request.url.startswith(live_server.url) else elsewhere.append(request.url),
    )

    page.goto(live_server.url + "/api/docs/")

    page.wait_for_selector(".opblock-summary-path")
    paths = {
        element.text_content().replace("\u200b", "")
        for element in page.query_selector_all(".opblock-summary-path")
    }
    assert paths == set(ENDPOINTS)
    assert (violations, elsewhere) == ([], [])


def test_the_schema_allows_no_verdict_yet_where_there_may_be_none(tmp_path):
    path = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(path))
    components = yaml.safe_load(path.read_text())["components"]["schemas"]

    for component, field in [
        ("Run", "verdict"),
        ("Server", "latest_verdict"),
        ("VerdictChange", "old_verdict"),
    ]:
        assert {"$ref": "#/components/schemas/BlankEnum"} in components[component]["properties"][field][
            "oneOf"
        ]
    assert components["BlankEnum"] == {"enum": [""]}
