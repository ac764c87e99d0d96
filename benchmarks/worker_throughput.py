"""How many runs a minute one worker process sustains with dozens of runs in flight, and what it costs.

    TEST_REDIS_URL=redis://127.0.0.1:6379/11 python benchmarks/worker_throughput.py \\
        [--fakes 200] [--in-flight 64] [--reply-delay 0.2] [--minutes 3] [--pool threads]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench python benchmarks/worker_throughput.py

It makes a throw-away test database (Django's test database of DATABASE_URL, SQLite by default),
starts `--fakes` loopback fake SMTP servers (closed Postfix-like, every reply and the greeting
`--reply-delay` seconds late) and ONE Celery worker process (`--pool threads --concurrency
--in-flight`, RELAYTEST_MAX_HOSTS_IN_FLIGHT the same) on the Redis database TEST_REDIS_URL, which
it empties. First one run alone, timed (started to finished, as the worker records it); then it
keeps `--in-flight` runs queued or running at all times, each of one server not under test at that
moment, starting a new run whenever one ends (the first ones spread over one run time, so that
they do not end in waves). Once all are in flight it counts, for `--minutes`, the runs that end.
It prints:

- runs per minute, the ideal (in flight x 60 / the run time alone) and their ratio;
- the peak RSS of the worker process (VmHWM, with its children if the pool has any) and its CPU time;
- false tarpits: hosts of closed servers (which never slow down) that got more connections than
  the run alone needed, or vectors left out for a host budget;
- the most connections open at once to one server (address and port), counted in the fakes, and
  to all of them together; on PostgreSQL, the most database connections open at once;
- the load average before and after (the machine may be shared).

DNS goes to an empty server on loopback, as in the tests. Not a test: figures for the README.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import time
from collections import Counter, deque
from pathlib import Path

import portal_setup  # noqa: F401  (first: the project, loopback DNS, Django on the test settings)
from django.db import connection
from django.test.utils import setup_test_environment

from relaytests.models import Department, MailServer, TestRun
from relaytests.tasks import enqueue_run
from tests.fakes.smtp import CLOSED, Crowd, FakeSMTPServer
from tests.portal.worker import REDIS_URL, Worker, celery_worker, loopback_server, publishing_to, queued_run

POLL = 0.2
ACTIVE = (TestRun.Status.QUEUED, TestRun.Status.RUNNING)


def unhurried(delay: float):
    return dataclasses.replace(
        CLOSED,
        description=f"closed, every reply {delay:g} s late",
        banner_delay=delay,
        tarpit_after_errors=0,  # "tarpit" from the first reply on, by `delay`: far below a slow reply
        tarpit_seconds=delay,
    )


class Farm:
    """The fake servers, their registrations, and which of them a run is testing now."""

    def __init__(self, fakes: list[FakeSMTPServer], department: Department):
        self.fakes = fakes
        self.servers = [loopback_server(department, port=fake.port) for fake in fakes]
        self.idle: deque[MailServer] = deque(self.servers)
        self.testing: dict[int, MailServer] = {}  # run id -> its server

    def start_run(self) -> TestRun:
        server = self.idle.popleft()
        run = queued_run(server)
        if not enqueue_run(run):
            raise SystemExit(f"could not publish run {run.pk} to {REDIS_URL}")
        self.testing[run.pk] = server
        return run

    def ended(self) -> list[int]:
        """The runs that ended since the last call; their servers are free again."""
        active = set(
            TestRun.objects.filter(pk__in=self.testing, status__in=ACTIVE).values_list("pk", flat=True)
        )
        done = [pk for pk in self.testing if pk not in active]
        for pk in done:
            self.idle.append(self.testing.pop(pk))
        return done


def alone(farm: Farm, rounds: int) -> tuple[float, int]:
    """The median run time of one run at a time, and the connections its host needed."""
    durations, connections = [], []
    for _ in range(rounds):
        run = farm.start_run()
        while not farm.ended():
            time.sleep(POLL)
        run.refresh_from_db()
        durations.append((run.finished_at - run.started_at).total_seconds())
        connections.append(run.report["hosts"][0]["connections"])
    return statistics.median(durations), max(connections)


def database_connections() -> int:
    """Connections open to this database now (PostgreSQL), the benchmark's own included; 0 on SQLite."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def sustained(farm: Farm, in_flight: int, run_alone: float, seconds: float) -> tuple[list[int], float, int]:
    """Keep `in_flight` runs going; the runs that ended in the measured window, its length, and the
    most database connections open at once.

    The first runs start spread over one run time, as runs that arrive one by one would, so that
    they do not end (and start again) in waves; the window opens once all of them are in flight.
    """
    counted: list[int] = []
    most_connections = 0
    started = time.perf_counter()
    window_started = started + run_alone
    spacing = run_alone / in_flight
    while time.perf_counter() < window_started + seconds:
        time.sleep(min(POLL, spacing))
        ended = farm.ended()
        most_connections = max(most_connections, database_connections())
        if time.perf_counter() >= window_started:
            counted += ended
        due = min(in_flight, 1 + int((time.perf_counter() - started) / spacing))
        for _ in range(due - len(farm.testing)):
            farm.start_run()
    return counted, time.perf_counter() - window_started, most_connections


def false_tarpits(run_ids: list[int], lone_connections: int) -> int:
    hosts = [h for report in TestRun.objects.filter(pk__in=run_ids).values_list("report", flat=True)
             for h in report.get("hosts", [])]  # fmt: skip
    return sum(
        h["connections"] > lone_connections or any(c["id"] == "vectors-not-run" for c in h["checks"])
        for h in hosts
    )


def process_tree(pid: int) -> list[int]:
    found, todo = [pid], [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(FileNotFoundError):
            children = [int(c) for c in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
            found += children
            todo += children
    return found


def peak_rss_mb(worker: Worker) -> float:
    total = 0
    for pid in process_tree(worker.process.pid):
        with contextlib.suppress(FileNotFoundError):
            status = Path(f"/proc/{pid}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return total / 1024


def cpu_seconds(worker: Worker) -> float:
    """User and system time of the worker and its pool processes (prefork's children live on)."""
    ticks = 0
    for pid in process_tree(worker.process.pid):
        with contextlib.suppress(FileNotFoundError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process's CPU time: the fakes' threads, the DNS server and the polling."""
    times = os.times()
    return times.user + times.system


def main(fakes: int, in_flight: int, delay: float, minutes: float, pool: str) -> None:
    setup_test_environment()
    name = connection.creation.create_test_db(verbosity=0)
    load_before = os.getloadavg()
    crowd = Crowd()
    try:
        department = Department.objects.create(name="Bench", slug="bench")
        with contextlib.ExitStack() as stack:
            servers = [
                stack.enter_context(FakeSMTPServer(unhurried(delay), crowd=crowd)) for _ in range(fakes)
            ]
            farm = Farm(servers, department)
            worker = stack.enter_context(
                celery_worker(pool, concurrency=in_flight, RELAYTEST_MAX_HOSTS_IN_FLIGHT=str(in_flight))
            )
            stack.enter_context(publishing_to(REDIS_URL))
            run_alone, lone_connections = alone(farm, rounds=2)
            cpu_before, fakes_cpu_before = cpu_seconds(worker), own_cpu_seconds()
            counted, window, most_connections = sustained(farm, in_flight, run_alone, minutes * 60)
            cpu, fakes_cpu = cpu_seconds(worker) - cpu_before, own_cpu_seconds() - fakes_cpu_before
            rss = peak_rss_mb(worker)
            errors = worker.output().count("Traceback")
        statuses = Counter(TestRun.objects.filter(pk__in=counted).values_list("status", "verdict"))
        tarpits = false_tarpits(counted, lone_connections)
        under_load = [
            (r.finished_at - r.started_at).total_seconds() for r in TestRun.objects.filter(pk__in=counted)
        ]
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)
    per_minute = len(counted) * 60 / window
    ideal = in_flight * 60 / run_alone
    print(f"{connection.vendor}, one worker process (--pool {pool} --concurrency {in_flight}), {fakes} fake "
          f"servers answering after {delay * 1000:.0f} ms, {in_flight} runs in flight")  # fmt: skip
    print(f"  one run alone: {run_alone:.1f} s ({lone_connections} connections)")
    print(
        f"  sustained: {len(counted)} runs ended in {window:.0f} s = {per_minute:.1f} runs/min; "
        f"ideal {ideal:.1f} runs/min; ratio {100 * per_minute / ideal:.0f} %"
    )
    print(f"  run time under load: median {statistics.median(under_load):.1f} s, max {max(under_load):.1f} s")
    print(f"  outcomes: {dict(statuses)}; worker tracebacks: {errors}")
    print(
        f"  worker peak RSS {rss:.0f} MB; CPU {cpu:.0f} s in the window ({1000 * cpu / len(counted):.0f} ms a run)"
    )
    print(f"  this process (the fakes, DNS, polling): CPU {fakes_cpu:.0f} s in the window")
    print(f"  false tarpits: {tarpits}")
    if connection.vendor == "postgresql":
        print(f"  most database connections at once: {most_connections} (the benchmark's own one included)")
    print(
        f"  most connections at once to one server: {max(f.seen.max_concurrent for f in servers)}; "
        f"to all servers together: {crowd.most}"
    )
    load_after = os.getloadavg()
    print(
        f"  load average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
        f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fakes", type=int, default=200, help="fake servers (default 200)")
    parser.add_argument("--in-flight", type=int, default=64, help="runs kept in flight (default 64)")
    parser.add_argument(
        "--reply-delay", type=float, default=0.2, help="seconds before each reply (default 0.2)"
    )
    parser.add_argument(
        "--minutes", type=float, default=3.0, help="length of the measured window (default 3)"
    )
    parser.add_argument("--pool", default="threads", help="the worker's Celery pool (default threads)")
    arguments = parser.parse_args()
    main(arguments.fakes, arguments.in_flight, arguments.reply_delay, arguments.minutes, arguments.pool)
