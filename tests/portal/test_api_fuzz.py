"""Schemathesis against the API's own schema on a live server: no generated request (valid or not)
makes a 500, and every answer matches the schema (its status, headers and body).

A member of a department with a server and a finished run asks with a token; the runs it starts are
published to the test's own Redis database, which is emptied first.

Schemathesis runs as its command, `schemathesis run`, as someone checking a deployment would run it.
Its pytest form (`schema.parametrize()`) builds every operation's boundary and invalid cases while
pytest collects, in every test process, whether or not that process runs the test: 1.9 s of CPU a
process, 11 s of a `make test` on six processes, to run in one.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from relaytests import tokens
from tests.portal.factories import make_run, report
from tests.portal.test_api_schema import ENDPOINTS

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
# The same cases every run (deterministic), so CI never fails by chance: the coverage phase's boundary
# and invalid values of every parameter and body field, then 30 generated requests per operation (200,
# four times over, found nothing more than these when this was written).
EXAMPLES_PER_OPERATION = 30


@pytest.fixture
def member_token(member, server, redis_broker, settings):
    settings.PORTAL_API_RATE = "100000/minute"  # the throttle has its own test; here it would only cut in
    make_run(server, verdict="secure", report=report())
    return tokens.issue(member, "schemathesis")[1]


def test_no_request_makes_a_500_and_every_answer_matches_the_schema(live_server, member_token, tmp_path):
    schema = tmp_path / "openapi.json"
    schema.write_bytes(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", str(schema), "--url", live_server.url,
        "--header", f"Authorization: Bearer {member_token}",
        # A schema cannot say which targets lie in scope or which servers this user may see, so a request
        # the schema allows may still be refused (400, 404): every other check holds for every answer.
        "--checks", "all", "--exclude-checks", "positive_data_acceptance",
        "--phases", "examples,coverage,fuzzing", "--max-examples", str(EXAMPLES_PER_OPERATION),
        "--generation-deterministic", "--workers", "2", "--no-color",
    ]  # fmt: skip
    # In the test's folder: the command keeps a cache of the failures it found (.schemathesis/) where it runs.
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # Every operation, none left out: the endpoints test_api_schema holds the schema to.
    operations = sum(len(methods) for methods in ENDPOINTS.values())
    assert f"Tested: {operations}\n" in result.stdout, result.stdout
