"""The engine against real Postfix instances, with the canary receiver: proof, not suspicion.

closed -> secure; open -> open_relay with the plain vector delivered and its Received chain
recorded; discard -> accepts_relay with delivered false. Without postfix these fail, never skip.
The last test is issue 4's "done when": the relaytest command, as an operator runs it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from relaytests.probe.receiver import CanaryReceiver
from relaytests.probe.report import Report
from relaytests.probe.suite import SuiteConfig, awaited_tokens, run_suite, settle_deliveries
from relaytests.probe.targets import HostTarget
from tests.postfix import INSTANCE_ADDRESSES, PROBE_SOURCE, RECEIVER_ADDRESS, free_port, postfix_instance
from tests.relaytest_command import command_line, environment

pytestmark = pytest.mark.postfix

CANARY_DOMAIN = "canary.test"
SECRET = "real-postfix-secret"
HELO = "probe.relaytest.test"
WAIT = 60.0  # an upper bound for local queue runs, never an expectation of speed
REPOSITORY = Path(__file__).resolve().parents[2]


def suite_config() -> SuiteConfig:
    return SuiteConfig(
        canary_domain=CANARY_DOMAIN,
        canary_secret=SECRET,
        probe_helo=HELO,
        source_address=PROBE_SOURCE,
        command_timeout=10.0,
        connect_timeout=10.0,
        run_deadline=120.0,
        send_data=True,
    )


async def probe_with_receiver(configuration: str) -> tuple[Report, dict, str]:
    """The engine against a fresh instance; (report settled with what arrived, arrivals, instance log)."""
    arrived: dict[str, dict] = {}

    def remember(deliveries):
        for delivery in deliveries:
            arrived.setdefault(delivery.token, delivery.arrival())

    async with CanaryReceiver(CANARY_DOMAIN, SECRET, remember, host=RECEIVER_ADDRESS, port=0) as receiver:
        with postfix_instance(
            configuration, canary_domain=CANARY_DOMAIN, canary_relay=(RECEIVER_ADDRESS, receiver.port)
        ) as instance:
            host = HostTarget(instance.address, instance.port)
            report = await run_suite(instance.address, [host], suite_config())
            await queue_settled(instance, report, arrived)
            log = instance.log()
    settle_deliveries(report, arrived)
    return report, arrived, log


async def queue_settled(instance, report: Report, arrived: dict) -> None:
    """Until every message the instance took has arrived or has been discarded (bounded by WAIT)."""
    taken = awaited_tokens(report)

    def settled() -> bool:
        return not taken - arrived.keys() or instance.log().count("accepted and discarded") >= len(taken)

    async with asyncio.timeout(WAIT):
        while not settled():
            await asyncio.sleep(0.1)


def vector(report: Report, vector_id: str):
    [host] = report.hosts
    return next(v for v in host.vectors if v.id == vector_id)


async def test_a_closed_postfix_is_secure():
    report, arrived, _ = await probe_with_receiver("closed")

    assert (report.verdict, report.hosts[0].verdict) == ("secure", "secure")
    plain = vector(report, "plain")
    assert (plain.outcome, plain.code, plain.reason) == ("rejected", 554, "relay_denied")
    assert all(v.data_code is None and v.delivered is None for v in report.hosts[0].vectors)
    assert "relay-refused-temporarily" not in {c.id for c in report.hosts[0].checks}
    assert arrived == {}


async def test_postfix_defaults_are_secure_with_a_warning_about_temporary_refusals():
    report, arrived, _ = await probe_with_receiver("closed_default")

    assert report.verdict == "secure"
    assert (vector(report, "plain").outcome, vector(report, "plain").code) == ("deferred", 454)
    assert {c.id: c.status for c in report.hosts[0].checks}["relay-refused-temporarily"] == "warn"
    assert arrived == {}


async def test_an_open_postfix_is_an_open_relay_proven_by_the_canary():
    report, arrived, _ = await probe_with_receiver("open")

    assert (report.verdict, report.hosts[0].verdict) == ("open_relay", "open_relay")
    plain = vector(report, "plain")
    assert (plain.outcome, plain.data_code, plain.delivered) == ("accepted", 250, True)
    assert (plain.delivery["peer_address"], plain.delivery["late"]) == (INSTANCE_ADDRESSES["open"], False)
    [hop] = plain.delivery["received_chain"]
    assert hop.startswith(f"from {HELO} (unknown [{PROBE_SOURCE}]) by open.postfix.test (Postfix) with ESMTP")
    assert f"for <{plain.token}@{CANARY_DOMAIN}>" in hop
    # Every test message the server took arrived, and only those: proof for each vector.
    took = {v.token for v in report.hosts[0].vectors if v.data_code == 250}
    assert set(arrived) == took
    assert all(v.delivered for v in report.hosts[0].vectors if v.data_code == 250)


async def test_a_discarding_postfix_accepts_relay_but_nothing_is_delivered():
    report, arrived, log = await probe_with_receiver("discard")

    assert (report.verdict, report.hosts[0].verdict) == ("accepts_relay", "accepts_relay")
    plain = vector(report, "plain")
    assert (plain.outcome, plain.data_code, plain.delivered) == ("accepted", 250, False)
    assert f"to=<{plain.token}@{CANARY_DOMAIN}>, relay=none" in log
    assert "no canary message arrived within the wait" in report.hosts[0].reason
    assert arrived == {}


def test_the_relaytest_command_proves_an_open_postfix_with_its_own_receiver():
    receiver_port = free_port(RECEIVER_ADDRESS)
    with postfix_instance(
        "open", canary_domain=CANARY_DOMAIN, canary_relay=(RECEIVER_ADDRESS, receiver_port)
    ) as instance:
        result = subprocess.run(
            command_line(
                f"{instance.address}:{instance.port}",
                "--canary-domain",
                CANARY_DOMAIN,
                "--canary-listen",
                f"{RECEIVER_ADDRESS}:{receiver_port}",
                "--canary-wait",
                str(WAIT),
                "--source-address",
                PROBE_SOURCE,
                "--json",
            ),
            cwd=REPOSITORY,
            env=environment(RELAYTEST_CANARY_SECRET=SECRET),
            capture_output=True,
            text=True,
            timeout=WAIT * 3,
        )

    assert result.returncode == 2, result.stderr  # relay, as monitoring plugins read it
    report = json.loads(result.stdout)
    assert report["verdict"] == "open_relay"
    plain = next(v for v in report["hosts"][0]["vectors"] if v["id"] == "plain")
    assert plain["delivered"] is True
    assert plain["delivery"]["received_chain"][0].startswith("from relaytest.invalid (unknown [127.0.0.1])")
