"""A hostile server's words through the whole portal: the run task stores them, the run page shows them.

NUL, terminal escapes, invalid UTF-8 and a certificate cryptography refuses must neither fail the
run (PostgreSQL refuses NUL in JSON) nor the page (a lone surrogate cannot be encoded as UTF-8).
"""

from __future__ import annotations

import dataclasses

import pytest

from relaytests import tasks
from relaytests.models import TestRun
from relaytests.tasks import run_suite
from tests.fakes.smtp import BEHAVIOURS, LOCAL_DOMAIN, FakeSMTPServer
from tests.portal.conftest import client_for
from tests.portal.worker import loopback_server, queued_run
from tests.probe.test_hostile_servers import hostile_characters

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("behaviour", "shown"),
    [
        ("hostile-text", "TLS not available: evil"),
        ("hostile-certificate", "owned"),
        ("malformed-certificate", "the certificate could not be read"),
    ],
)
def test_a_hostile_server_is_tested_to_the_end_and_its_page_is_safe(member, department, behaviour, shown):
    with FakeSMTPServer(behaviour) as fake:
        run = queued_run(loopback_server(department, port=fake.port, mail_domain=LOCAL_DOMAIN))
        run_suite.apply((run.pk,))

    run.refresh_from_db()
    assert (run.status, run.verdict) == (TestRun.Status.DONE, "secure")
    assert hostile_characters(run.report) == set()
    response = client_for(member).get(run.get_absolute_url())
    assert response.status_code == 200
    page = response.content.decode()
    assert hostile_characters(page) - {"\n"} == set()
    assert shown in page


def test_the_host_budget_setting_reaches_the_engine(department, settings):
    settings.RELAYTEST_HOST_BUDGET = 9
    with FakeSMTPServer(dataclasses.replace(BEHAVIOURS["tarpit"], tarpit_seconds=1.2)) as fake:
        run = queued_run(loopback_server(department, port=fake.port, mail_domain=LOCAL_DOMAIN))
        run_suite.apply((run.pk,))

    run.refresh_from_db()
    assert (run.status, run.verdict) == (TestRun.Status.DONE, "inconclusive")
    [host] = run.report["hosts"]
    assert host["duration_s"] <= 9
    assert "host's time budget of 9 s" in host["reason"]


def test_the_cap_on_hosts_in_flight_reaches_the_engine(department, settings, monkeypatch):
    settings.RELAYTEST_MAX_HOSTS_IN_FLIGHT = 3
    configs = []

    async def record_config(target, hosts, config, progress=None, **kwargs):
        configs.append(config)
        raise RuntimeError("enough: the config is what this test reads")

    monkeypatch.setattr(tasks, "probe_suite", record_config)
    run = queued_run(loopback_server(department, port=2525, mail_domain=LOCAL_DOMAIN))
    run_suite.apply((run.pk,))
    assert [config.max_hosts_in_flight for config in configs] == [3]
