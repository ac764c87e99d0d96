"""Fake SMTP servers and the engine run against them, for the probe's behaviour tests."""

from __future__ import annotations

import dataclasses

import pytest

from relaytests.probe.report import Report
from relaytests.probe.suite import SuiteConfig, run_suite
from relaytests.probe.targets import HostTarget
from tests.fakes import BEHAVIOURS, Behaviour, FakeSMTPServer

RUN_ID = "fakesrun01"
CANARY_SECRET = "test"


@pytest.fixture
def fake_smtp():
    """Start fake servers by behaviour name (with field changes) or Behaviour; all stop afterwards."""
    servers: list[FakeSMTPServer] = []

    def start(behaviour: str | Behaviour, **changes) -> FakeSMTPServer:
        chosen = BEHAVIOURS[behaviour] if isinstance(behaviour, str) else behaviour
        server = FakeSMTPServer(dataclasses.replace(chosen, **changes))
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def suite_config(**changes) -> SuiteConfig:
    settings = {
        "canary_domain": "canary.example.net",
        "canary_secret": CANARY_SECRET,
        "probe_helo": "probe.example.net",
        "local_domain": "dept.example.edu",
        "command_timeout": 10.0,
        "connect_timeout": 10.0,
        "run_deadline": 120.0,
        "run_id": RUN_ID,
    }
    return SuiteConfig(**{**settings, **changes})


@pytest.fixture
def probe():
    """Run the whole suite against fake servers (one host each) and return the report."""

    async def run(*servers: FakeSMTPServer, **config_changes) -> Report:
        hosts = [HostTarget(server.address, server.port) for server in servers]
        return await run_suite("127.0.0.1", hosts, suite_config(**config_changes))

    return run
