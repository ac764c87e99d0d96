"""A canary delivery proves only the host and the vector it names, and only a message that host took.

Two MX hosts of one mail domain, one closed and one open (real Postfix instances), through
`relaytest --domain`; and a forged delivery for a refused vector, sent straight to the command's
own receiver by the server under test, which sees every token.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from relaytests.probe.receiver import DEFAULT_LIMITS, CanaryReceiver, Delivery
from relaytests.probe.suite import SuiteConfig, awaited_tokens, run_suite
from relaytests.probe.targets import HostTarget
from tests.dnsserver import ZoneServer
from tests.fakes.smtp import BEHAVIOURS, LOCAL_DOMAIN, FakeSMTPServer
from tests.postfix import (
    INSTANCE_ADDRESSES,
    PROBE_SOURCE,
    RECEIVER_ADDRESS,
    free_port,
    free_port_on_all,
    postfix_instance,
)
from tests.relaytest_command import command_line, environment

REPOSITORY = Path(__file__).resolve().parents[2]
CANARY_DOMAIN = "canary.test"
SECRET = "canary-proof-secret"
WAIT = 60.0  # an upper bound for local queue runs, never an expectation of speed
CLOSED, OPEN = INSTANCE_ADDRESSES["closed"], INSTANCE_ADDRESSES["open"]
TWO_MX_HOSTS = f"""
{LOCAL_DOMAIN}. MX 10 mx1.{LOCAL_DOMAIN}.
{LOCAL_DOMAIN}. MX 20 mx2.{LOCAL_DOMAIN}.
mx1.{LOCAL_DOMAIN}. A {CLOSED}
mx2.{LOCAL_DOMAIN}. A {OPEN}
"""


def relaytest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command_line(*args, "--canary-domain", CANARY_DOMAIN, "--timeout", "10"),
        cwd=REPOSITORY,
        env=environment(RELAYTEST_CANARY_SECRET=SECRET),
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
    )


@pytest.mark.postfix
def test_the_closed_mx_host_stays_secure_beside_an_open_one():
    port = free_port_on_all(CLOSED, OPEN)
    receiver_port = free_port(RECEIVER_ADDRESS)
    with (
        postfix_instance("closed", port=port),
        postfix_instance(
            "open", canary_domain=CANARY_DOMAIN, canary_relay=(RECEIVER_ADDRESS, receiver_port), port=port
        ),
        ZoneServer(TWO_MX_HOSTS) as dns,
    ):
        result = relaytest(
            "--domain",
            LOCAL_DOMAIN,
            "--port",
            str(port),
            "--resolver",
            dns.address,
            "--canary-listen",
            f"{RECEIVER_ADDRESS}:{receiver_port}",
            "--canary-wait",
            str(WAIT),
            "--source-address",
            PROBE_SOURCE,
            "--vectors",
            "plain,percent-host",
            "--json",
        )

    report = json.loads(result.stdout)
    hosts = {h["address"]: h for h in report["hosts"]}
    closed, relaying = hosts[CLOSED], hosts[OPEN]
    assert closed["verdict"] == "secure"
    assert [(v["outcome"], v["delivered"]) for v in closed["vectors"]] == [("rejected", None)] * 2
    assert relaying["verdict"] == "open_relay"
    assert {v["id"]: v["delivered"] for v in relaying["vectors"]}["plain"] is True
    assert {v["token"] for v in closed["vectors"]}.isdisjoint(v["token"] for v in relaying["vectors"])
    assert (report["verdict"], result.returncode) == ("open_relay", 2)
    assert report["unexpected_deliveries"] == []


def against_a_forger(*args: str) -> tuple[subprocess.CompletedProcess, FakeSMTPServer]:
    """The command against a closed server that sends the first token it refuses straight to the canary."""
    receiver_port = free_port("127.0.0.1")
    forger = replace(BEHAVIOURS["closed"], forge_to=("127.0.0.1", receiver_port))
    with FakeSMTPServer(forger) as fake:
        result = relaytest(
            "127.0.0.1",
            "--port",
            str(fake.port),
            "--local-domain",
            LOCAL_DOMAIN,
            "--canary-listen",
            f"127.0.0.1:{receiver_port}",
            "--canary-wait",
            "5",
            "--vectors",
            "plain",
            *args,
        )
    return result, fake


def test_a_forged_delivery_for_a_refused_vector_proves_nothing_and_is_shown():
    result, fake = against_a_forger("--json")

    report = json.loads(result.stdout)
    [host] = report["hosts"]
    [plain] = host["vectors"]
    assert fake.forged == [f"{plain['token']}@{CANARY_DOMAIN}"]  # the server sent it straight to the canary
    assert (plain["outcome"], plain["data_code"], plain["delivered"]) == ("rejected", None, None)
    assert (report["verdict"], host["verdict"]) == ("secure", "secure")
    assert result.returncode in (0, 1), result.stderr  # no relay (1: hygiene warnings)
    [unexpected] = report["unexpected_deliveries"]
    assert (unexpected["token"], unexpected["vector_id"], unexpected["peer_address"]) == (
        plain["token"],
        "plain",
        "127.0.0.1",
    )
    assert (unexpected["host"], unexpected["port"], unexpected["late"]) == ("127.0.0.1", fake.port, False)
    assert "refused" in unexpected["why"]


def test_the_text_output_shows_the_forged_delivery_where_it_came_from():
    result, fake = against_a_forger()

    lines = result.stdout.splitlines()
    assert lines[0] == "127.0.0.1: SECURE"
    [unexpected] = [line for line in lines if line.startswith("[unexpected delivery]")]
    assert unexpected.startswith(
        f"[unexpected delivery] plain for 127.0.0.1 port {fake.port}, from 127.0.0.1 at "
    )
    assert unexpected.endswith(
        ": no proof, the server refused this vector (554 5.7.1 <"
        f"{fake.forged[0]}>: Relay access denied), so no test message was sent"
    )


@pytest.mark.postfix
@pytest.mark.slow
async def test_a_relay_delivering_in_parallel_to_a_slow_receiver_loses_no_message():
    """Postfix opens up to 20 connections to one destination: more than a peer's share of sessions."""
    arrived: dict[str, Delivery] = {}

    async def slow_database(deliveries: list[Delivery]) -> None:
        await asyncio.sleep(1.0)  # a busy database: Postfix opens more connections meanwhile
        arrived.update((delivery.token, delivery) for delivery in deliveries)

    async with CanaryReceiver(
        CANARY_DOMAIN, SECRET, slow_database, host=RECEIVER_ADDRESS, port=0
    ) as receiver:
        with postfix_instance(
            "open", canary_domain=CANARY_DOMAIN, canary_relay=(RECEIVER_ADDRESS, receiver.port)
        ) as instance:
            config = SuiteConfig(
                canary_domain=CANARY_DOMAIN,
                canary_secret=SECRET,
                source_address=PROBE_SOURCE,
                command_timeout=10.0,
                connect_timeout=10.0,
                send_data=True,
            )
            report = await run_suite(instance.address, [HostTarget(instance.address, instance.port)], config)
            taken = awaited_tokens(report)
            async with asyncio.timeout(WAIT):
                while taken - arrived.keys():
                    await asyncio.sleep(0.1)
            log = instance.log()

    assert len(taken) > DEFAULT_LIMITS.max_sessions_per_peer
    assert "421 4.7.0" not in log  # no message was deferred by the receiver
