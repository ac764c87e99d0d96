"""Where `make test` spends its time: wall and CPU of the whole run, of each test and of each file.

    python benchmarks/make_test_cost.py [--top N] [-- PYTEST_ARGS...]

Runs `make test` (with PYTEST_ARGS, e.g. `-- tests/probe`) and, through a pytest plugin loaded in
every test process, records each test's wall time, the CPU time of its test process and that of the
processes the test started and waited for (workers, browsers, CLI runs, Postfix's `postfix start`;
not daemons that left, such as a Postfix instance's master, nor most of Chromium's CPU: its renderers
leave the tree). It samples the machine's busy share of its cores every two seconds. Then it prints
the run's wall and CPU time, the machine's busy core-seconds, and the costliest tests and files. Not a
test: figures to compare between changes (the machine's other load moves them by a quarter or more:
compare runs made close together).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
RECORD = "MAKE_TEST_COST_RECORD"  # the folder the plugin writes to, one file per test process


def _cpu() -> tuple[float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """The plugin: run with `-p benchmarks.make_test_cost` and RECORD set."""
    own, children = _cpu()
    started, started_at = time.monotonic(), time.time()
    yield
    own_after, children_after = _cpu()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    line = [item.nodeid, time.monotonic() - started, own_after - own, children_after - children, started_at]
    with open(Path(os.environ[RECORD], worker), "a") as out:
        out.write(json.dumps(line) + "\n")


def _busy_core_seconds(stop: threading.Event, total: list[float]) -> None:
    """Adds up, every 2 s, the core-seconds the machine was busy (anything but idle and I/O wait)."""

    def ticks() -> tuple[int, int]:
        values = [int(field) for field in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
        return sum(values), values[3] + values[4]

    hertz = os.sysconf("SC_CLK_TCK")
    before = ticks()
    while not stop.wait(2):
        now = ticks()
        total[0] += ((now[0] - before[0]) - (now[1] - before[1])) / hertz
        before = now


def _report(records: Path, started_at: float, wall: float, cpu: float, busy: float, top: int) -> None:
    by_process = {
        path.name: [json.loads(line) for line in path.read_text().splitlines()] for path in records.iterdir()
    }
    rows = [row for process_rows in by_process.values() for row in process_rows]
    own, started = sum(row[2] for row in rows), sum(row[3] for row in rows)
    print(
        f"make test: {wall:.0f} s wall, {cpu:.0f} s CPU (its process tree), {busy:.0f} busy core-seconds (machine)"
    )
    # When each test process began its first test and ended its last, from the start of `make test`: the
    # time before the first is start-up and collection, a process ending early is one left idle.
    for name, process_rows in sorted(by_process.items()):
        first, last = min(row[4] for row in process_rows), max(row[4] + row[1] for row in process_rows)
        print(f"{name}: tests from {first - started_at:.0f} s to {last - started_at:.0f} s")
    print(
        f"in the {len(rows)} tests: {own:.0f} s CPU in the test processes, {started:.0f} s in what they started;"
    )
    print(
        f"the rest ({cpu - own - started:.0f} s) starts the test processes, collects, sets databases up, reports"
    )
    print(f"\nCostliest tests (CPU: own + started, wall), of {len(rows)}:")
    for nodeid, seconds, test_cpu, child_cpu, _ in sorted(rows, key=lambda row: -(row[2] + row[3]))[:top]:
        print(f"  {test_cpu:6.1f} + {child_cpu:5.1f} s  {seconds:6.1f} s  {nodeid}")
    files: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for nodeid, seconds, test_cpu, child_cpu, _ in rows:
        entry = files[nodeid.split("::")[0]]
        entry[0] += 1
        entry[1] += test_cpu
        entry[2] += child_cpu
        entry[3] += seconds
    print("\nCostliest files (tests, CPU: own + started, wall summed):")
    for name, (count, test_cpu, child_cpu, seconds) in sorted(
        files.items(), key=lambda f: -(f[1][1] + f[1][2])
    )[:top]:
        print(f"  {count:4d}  {test_cpu:6.1f} + {child_cpu:5.1f} s  {seconds:6.1f} s  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--top", type=int, default=15, help="how many tests and files to list (default 15)")
    parser.add_argument("pytest_args", nargs="*", help="more arguments for pytest, after --")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="make-test-cost-") as records:
        environment = {**os.environ, RECORD: records, "PYTHONPATH": str(PROJECT)}
        pytest_args = " ".join(["-p benchmarks.make_test_cost", *options.pytest_args])
        stop, busy = threading.Event(), [0.0]
        sampler = threading.Thread(target=_busy_core_seconds, args=(stop, busy), daemon=True)
        sampler.start()
        started, started_at, cpu_before = time.monotonic(), time.time(), _cpu()[1]
        result = subprocess.run(["make", "test", f"PYTEST_ARGS={pytest_args}"], cwd=PROJECT, env=environment,
                                check=False)  # fmt: skip
        wall, cpu = time.monotonic() - started, _cpu()[1] - cpu_before
        stop.set()
        sampler.join()
        _report(Path(records), started_at, wall, cpu, busy[0], options.top)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
