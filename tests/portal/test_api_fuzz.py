"""Schemathesis against the API's own schema on a live server: no generated request (valid or not)
makes a 500, and every answer matches the schema (its status, headers and body).

A member of a department with a server and a finished run asks with a token; the runs it starts are
published to the test's own Redis database, which is emptied first.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from relaytests import tokens
from tests.portal.factories import make_run, report

pytestmark = [pytest.mark.django_db(transaction=True)]
# The same examples every run (derandomize), so CI never fails by chance; 200 random ones per operation,
# four times over, found nothing more than these when this was written.
EXAMPLES_PER_OPERATION = 30

SCHEMA = schemathesis.openapi.from_dict(
    json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
)


@pytest.fixture
def member_token(member, server, redis_broker, settings):
    settings.PORTAL_API_RATE = "100000/minute"  # the throttle has its own test; here it would only cut in
    make_run(server, verdict="secure", report=report())
    return tokens.issue(member, "schemathesis")[1]


@SCHEMA.parametrize()
# The fixtures are set up once per operation on purpose: the data accumulates across its examples.
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_no_request_makes_a_500_and_every_answer_matches_the_schema(case, live_server, member_token):
    case.call_and_validate(
        base_url=live_server.url,
        headers={"Authorization": f"Bearer {member_token}"},
        # A schema cannot say which targets lie in scope or which servers this user may see, so a request
        # the schema allows may still be refused (400, 404): the other checks hold for every answer.
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
