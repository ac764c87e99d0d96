"""How fast the whole vector catalogue runs against loopback fake servers, and what it costs them.

    python benchmarks/suite_speed.py [--rounds N]

For fake servers (tests/fakes, in this process) it prints the wall time of a run, the time per
vector, the connections opened and the round trips made (HostReport's connections and
round_trips), and what the server's own limits cost: tarpit sleeps and hang-ups for too many
errors (the fake's counters), as the median of N rounds. The servers: closed, open, and two
strict ones with Postfix's limits (tarpit after 10 errors, each reply then 5 s late; hang up
after 10 errors), and the open one with canary delivery on (DATA after every accepted vector).
Not a test: numbers to compare between changes to the engine's connection policy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from relaytests.probe.suite import SuiteConfig, run_suite  # noqa: E402
from relaytests.probe.targets import HostTarget  # noqa: E402
from tests.fakes import FakeSMTPServer  # noqa: E402

import dataclasses  # noqa: E402

SERVERS = ("closed", "open", "tarpit-after-errors", "drop-after-errors", "open+data")
CONFIG = SuiteConfig(
    canary_domain="canary.example.net",
    canary_secret="benchmark",
    probe_helo="probe.example.net",
    local_domain="dept.example.edu",
    command_timeout=10.0,
    connect_timeout=10.0,
    run_deadline=300.0,
)


async def one_run(name: str) -> dict[str, float]:
    behaviour, _, extra = name.partition("+")
    config = dataclasses.replace(CONFIG, send_data=extra == "data")
    with FakeSMTPServer(behaviour) as server:
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


async def main(rounds: int) -> None:
    print(f"{'server':<20} {'verdict':<14} {'vectors':>7} {'wall s':>8} {'ms/vector':>10} "
          f"{'connections':>11} {'round trips':>11} {'limits hit':>10}   (median of {rounds})")
    for name in SERVERS:
        row = median_of([await one_run(name) for _ in range(rounds)])
        print(f"{name:<20} {row['verdict']:<14} {row['vectors']:>7.0f} {row['wall_s']:>8.3f} "
              f"{row['per_vector_ms']:>10.2f} {row['connections']:>11.0f} {row['round_trips']:>11.0f} "
              f"{row['penalties']:>10.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per server (default 3)")
    asyncio.run(main(parser.parse_args().rounds))
