"""How fast the whole vector catalogue runs against loopback fake servers, and what it costs them.

    python benchmarks/suite_speed.py [--rounds N] [--crowd N] [--hog SECONDS] [--greeting SECONDS]

For fake servers (tests/fakes, in this process) it prints the wall time of a run, the time per
vector, the connections opened and the round trips made (HostReport's connections and
round_trips), and what the server's own limits cost: tarpit sleeps and hang-ups for too many
errors (the fake's counters), as the median of N rounds. The servers: closed, open, and two
strict ones with Postfix's limits (tarpit after 10 errors, each reply then 5 s late; hang up
after 10 errors), the open one with canary delivery on (DATA after every accepted vector), and
a closed one whose greeting comes ``--greeting`` seconds late (what a new connection costs), and
that one again with Postfix's real limits (each reply 1 s late after 10 errors, hang up at 20).

Then a crowd: ``--crowd`` closed servers (none ever slows down) tested in one run, under the
engine's cap on hosts in flight. It prints the hosts treated as tarpits (more connections than a
lone closed server needs, or vectors left out for a host budget), the most connections one
server had open at once, and the connections per host. ``--hog`` adds CPU load of our own: the
event loop is blocked that many seconds once a second while the crowd runs.

Every DNS lookup (the PTR checks) goes to an empty DNS server on loopback, as in the tests.
Not a test: numbers to compare between changes to the engine's connection policy.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from relaytests.probe.suite import SuiteConfig, run_suite
from relaytests.probe.targets import HostTarget
from tests.conftest import EMPTY_DNS  # (it also points dnspython's defaults at loopback)
from tests.fakes import BEHAVIOURS, FakeSMTPServer

SERVERS = (
    "closed",
    "open",
    "tarpit-after-errors",
    "drop-after-errors",
    "open+data",
    "slow-greeting",
    "slow-greeting-postfix",
)
CONFIG = SuiteConfig(
    canary_domain="canary.example.net",
    canary_secret="benchmark",
    probe_helo="probe.example.net",
    local_domain="dept.example.edu",
    command_timeout=10.0,
    connect_timeout=30.0,
    run_deadline=600.0,
    resolver=EMPTY_DNS.address,
)


def behaviour_of(name: str, greeting_delay: float):
    if name == "slow-greeting":
        return dataclasses.replace(BEHAVIOURS["slow-banner"], banner_delay=greeting_delay)
    if name == "slow-greeting-postfix":  # and Postfix's limits: 1 s a reply after 10 errors, gone at 20
        return dataclasses.replace(
            BEHAVIOURS["slow-banner"],
            banner_delay=greeting_delay,
            tarpit_after_errors=10,
            tarpit_seconds=1.0,
            drop_after_errors=20,
        )
    return BEHAVIOURS[name.partition("+")[0]]


async def one_run(name: str, greeting_delay: float) -> dict[str, float]:
    config = dataclasses.replace(CONFIG, send_data=name.endswith("+data"))
    with FakeSMTPServer(behaviour_of(name, greeting_delay)) as server:
        started = time.perf_counter()
        report = await run_suite("127.0.0.1", [HostTarget("127.0.0.1", server.port)], config)
        wall = time.perf_counter() - started
        penalties = server.seen.tarpit_sleeps + sum(conn.dropped for conn in server.seen.connections)
    host = report.hosts[0]
    return {
        "penalties": penalties,
        "wall_s": wall,
        "vectors": len(host.vectors),
        "per_vector_ms": 1000 * wall / max(1, len(host.vectors)),
        "connections": host.connections,
        "round_trips": host.round_trips,
        "verdict": host.verdict,
    }


def median_of(runs: list[dict]) -> dict:
    numbers = {key: statistics.median(run[key] for run in runs) for key in runs[0] if key != "verdict"}
    return {**numbers, "verdict": runs[0]["verdict"]}


async def hog_the_loop(seconds: float) -> None:
    while True:
        await asyncio.sleep(1.0)
        time.sleep(seconds)  # CPU work that blocks the loop, as a busy worker's would


async def crowd_run(size: int, lone_connections: int, hog: float) -> None:
    """`size` closed servers in one run: false tarpits, connections at once per server, per host."""
    with ExitStack() as stack:
        servers = [stack.enter_context(FakeSMTPServer("closed")) for _ in range(size)]
        hosts = [HostTarget("127.0.0.1", server.port) for server in servers]
        hogging = asyncio.ensure_future(hog_the_loop(hog)) if hog else None
        started = time.perf_counter()
        report = await run_suite("127.0.0.1", hosts, CONFIG)
        wall = time.perf_counter() - started
        if hogging:
            hogging.cancel()
        at_once = max(server.seen.max_concurrent for server in servers)
    tarpitted = [
        h
        for h in report.hosts
        if h.connections > lone_connections or any(c.id == "vectors-not-run" for c in h.checks)
    ]
    per_host = Counter(h.connections for h in report.hosts)
    print(
        f"\ncrowd of {size} closed servers, loop blocked {hog:g} s a second: wall {wall:.1f} s, "
        f"verdicts {dict(Counter(h.verdict for h in report.hosts))}"
    )
    print(
        f"  hosts treated as tarpits: {len(tarpitted)} (a lone closed server needs {lone_connections} connections)"
    )
    print(f"  most connections open at once to one server: {at_once}")
    print(f"  connections per host (connections: hosts): {dict(sorted(per_host.items()))}")


async def main(rounds: int, crowd: int, hog: float, greeting_delay: float) -> None:
    print(
        f"{'server':<20} {'verdict':<14} {'vectors':>7} {'wall s':>8} {'ms/vector':>10} "
        f"{'connections':>11} {'round trips':>11} {'limits hit':>10}   (median of {rounds})"
    )
    rows = {}
    for name in SERVERS:
        rows[name] = row = median_of([await one_run(name, greeting_delay) for _ in range(rounds)])
        label = f"{name} {greeting_delay:g}s" if name == "slow-greeting" else name
        print(
            f"{label:<20} {row['verdict']:<14} {row['vectors']:>7.0f} {row['wall_s']:>8.3f} "
            f"{row['per_vector_ms']:>10.2f} {row['connections']:>11.0f} {row['round_trips']:>11.0f} "
            f"{row['penalties']:>10.0f}"
        )
    if crowd:
        await crowd_run(crowd, int(rows["closed"]["connections"]), hog)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per server (default 3)")
    parser.add_argument(
        "--crowd", type=int, default=200, help="closed servers tested at once (default 200; 0: none)"
    )
    parser.add_argument(
        "--hog", type=float, default=0.0, help="seconds the loop is blocked each second (default 0)"
    )
    parser.add_argument(
        "--greeting", type=float, default=8.0, help="the slow server's greeting delay (default 8 s)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.crowd, args.hog, args.greeting))
