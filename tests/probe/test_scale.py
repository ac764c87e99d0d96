"""The engine at scale: many hosts under a cap, a busy event loop, and servers that are slow to greet."""

from __future__ import annotations

import asyncio
import math
import time
from contextlib import ExitStack

from relaytests.probe import pacing, vectors
from relaytests.probe.session import SmtpSession, Transcript
from relaytests.probe.suite import ProgressEvent, run_suite
from relaytests.probe.targets import HostTarget
from tests.fakes import FakeSMTPServer
from tests.probe.conftest import suite_config

CROWD = 40  # closed servers at once: enough to fill the cap many times over, and quick here
CAP = 6


class InFlight:
    """Progress listener: the most hosts between host_started and host_done at any moment."""

    def __init__(self) -> None:
        self.now = self.most = 0

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "host_started":
            self.now += 1
            self.most = max(self.most, self.now)
        elif event.kind == "host_done":
            self.now -= 1


def hosts_of(*servers: FakeSMTPServer) -> list[HostTarget]:
    return [HostTarget("127.0.0.1", server.port) for server in servers]


async def closed_connections(fake_smtp, **config) -> int:
    """How many connections a lone closed server gets from an unhurried probe."""
    server = fake_smtp("closed")
    report = await run_suite("127.0.0.1", hosts_of(server), suite_config(**config))
    return report.hosts[0].connections


async def test_a_crowd_of_hosts_honours_the_cap_and_one_connection_per_address(fake_smtp):
    with ExitStack() as stack:
        servers = [stack.enter_context(FakeSMTPServer("closed")) for _ in range(CROWD)]
        # The same server three times (a domain whose MX names share an address) and one more run
        # in the same event loop: neither may open a second connection to it, nor pass the cap.
        shared = servers[0]
        in_flight = InFlight()
        config = suite_config(max_hosts_in_flight=CAP)
        first, second = await asyncio.gather(
            run_suite("127.0.0.1", hosts_of(*servers, shared, shared), config, in_flight),
            run_suite("127.0.0.1", hosts_of(shared, *servers[1:5]), config, in_flight),
        )
    assert {h.verdict for h in first.hosts + second.hosts} == {"secure"}
    assert in_flight.most == CAP
    assert max(server.seen.max_concurrent for server in servers) == 1
    # Its four visits made every connection it saw (how many each made depends on how fast it greets).
    visits = [h for h in first.hosts + second.hosts if h.port == shared.port]
    assert len(visits) == 4
    assert len(shared.seen.connections) == sum(h.connections for h in visits)


async def test_a_busy_event_loop_is_not_taken_for_a_tarpit(fake_smtp):
    """Bursts that block our loop longer than a slow reply, while a fast server answers at once."""
    unhurried = await closed_connections(fake_smtp, slow_reply_seconds=0.3)
    server = fake_smtp("closed")

    async def hog_the_loop():
        while True:
            await asyncio.sleep(0.02)
            time.sleep(0.4)  # the point: CPU work that blocks the loop

    hog = asyncio.ensure_future(hog_the_loop())
    try:
        report = await run_suite("127.0.0.1", hosts_of(server), suite_config(slow_reply_seconds=0.3))
    finally:
        hog.cancel()
    host = report.hosts[0]
    assert host.verdict == "secure"
    assert host.connections == unhurried
    assert not [c for c in host.checks if c.id == "vectors-not-run"]
    assert all(c.data != {"not_run": "tarpit"} for c in host.checks)


async def test_a_slow_greeting_is_paid_on_fewer_connections(fake_smtp, probe):
    # Scaled down: a greeting 0.5 s late, with a slow reply at 0.25 s (in the field: 8 s and 1 s).
    fast = await closed_connections(fake_smtp, slow_reply_seconds=0.25)
    server = fake_smtp("slow-banner", banner_delay=0.5)
    report = await probe(server, slow_reply_seconds=0.25)
    host = report.hosts[0]
    assert host.verdict == "secure"
    assert host.connections <= fast // 2  # each connection carries vectors up to the error budget
    assert server.seen.most_errors_on_one_connection <= suite_config().max_errors_when_connecting_is_slow
    assert not any(conn.dropped for conn in server.seen.connections)


# Postfix's shape, scaled down: every reply `TARPIT` s late after 10 errors, a hang-up at 20, and a
# greeting 2 s late (in the field: 1 s, 20 and 8 s). Three replies a vector: sitting out the slowdown
# is cheaper than a new greeting for the last two vectors, dearer for three or more.
TARPIT, GREETING = 0.3, 2.0


def postfix_with_a_slow_greeting(fake_smtp):
    return fake_smtp(
        "slow-banner",
        banner_delay=GREETING,
        tarpit_after_errors=10,
        tarpit_seconds=TARPIT,
        drop_after_errors=20,
    )


async def test_against_a_slow_greeting_the_last_vectors_sit_out_a_slowdown(fake_smtp, probe):
    server = postfix_with_a_slow_greeting(fake_smtp)
    every = [vector.id for vector in vectors.in_run_order(vectors.catalogue())]
    report = await probe(server, slow_reply_seconds=0.25, vector_ids=every[:11])

    host = report.hosts[0]
    assert host.verdict == "secure" and len(host.vectors) == 11
    assert host.connections == 1  # the slowdown came with at most two vectors to go
    assert server.seen.tarpit_sleeps > 0
    assert not any(conn.dropped for conn in server.seen.connections)


async def test_against_a_slow_greeting_a_slowdown_with_many_vectors_to_go_costs_a_new_connection(
    fake_smtp, probe
):
    server = postfix_with_a_slow_greeting(fake_smtp)
    report = await probe(server, slow_reply_seconds=0.25)

    host = report.hosts[0]
    assert host.verdict == "secure"
    assert not any(conn.dropped for conn in server.seen.connections)
    # The first connection learns where the slowdown starts; the others stop short of it.
    assert server.seen.tarpit_sleeps <= 2
    assert host.connections <= 1 + math.ceil(len(host.vectors) / 9)


def test_one_slow_reply_under_load_is_noise_until_a_second_one_confirms_it():
    session = SmtpSession("127.0.0.1", 25, Transcript(), command_timeout=1, connect_timeout=1)
    session._count_reply(1.5, under_load=True)
    session._count_reply(0.01, under_load=False)
    assert not session.slowed_down  # a slow reply while our loop lagged, then a fast one: noise
    session.errors = 3
    session._count_reply(1.5, under_load=True)
    session.errors = 4
    session._count_reply(1.5, under_load=True)
    assert session.errors_before_slowdown == 3  # the tarpit began at the first of the two


def test_a_lag_that_is_a_small_part_of_a_slow_reply_leaves_it_slow():
    assert pacing.under_load(0.5, 1.5)
    assert not pacing.under_load(0.15, 1.2)  # a tarpit's 1.2 s reply on a loop 0.15 s late
