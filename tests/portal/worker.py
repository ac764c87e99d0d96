"""A real Celery worker process for the tests, the Redis broker it talks to, and the loopback servers it tests.

The worker is `celery -A portal worker` in its own process group, pointed at the test database
(the file pytest-django made on SQLite, the test database on PostgreSQL) and at a Redis database
of its own that is emptied first, so messages a killed worker left behind in an earlier session
cannot reach this one. A missing Redis fails the test: in CI `.ci/run` starts it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.db import connection

from portal.celery import app as celery_app
from relaytests.models import Department, MailServer, TestRun
from relaytests.probe.canary import new_run_id
from relaytests.probe.environment import probe_queue
from tests.parallel import redis_url

# The first test worker's Redis database; with pytest-xdist each worker its own (tests/parallel.py).
REDIS_URL = redis_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/8"))
READY_WITHIN = 60.0  # seconds for a worker to start; a bound for a broken setup, not a speed claim
FINISHED_WITHIN = 120.0
POLL = 0.2


def loopback_server(
    department: Department, address: str = "127.0.0.1", port: int = 25, **fields
) -> MailServer:
    """A server registered by its address, the one address the scope check accepted."""
    fields.setdefault("addresses", [address])
    return MailServer.objects.create(
        department=department, target=address, kind=MailServer.Kind.IP, port=port, **fields
    )


def queued_run(server: MailServer, **fields) -> TestRun:
    """A run as the Test button creates it (other states through `fields`)."""
    fields.setdefault("addresses", server.addresses)
    return TestRun.objects.create(server=server, probe_run_id=new_run_id(), **fields)


def database_url() -> str:
    """The URL of the database this test process uses, for the worker process."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def empty_broker() -> None:
    """Empty the test's Redis database; a Redis that is not there fails the test here, loudly."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).flushdb()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"The broker tests need Redis at {REDIS_URL} (.ci/run starts it): {exc}")


@contextlib.contextmanager
def publishing_to(broker_url: str) -> Iterator[None]:
    """Make this process (the views' enqueue_run) publish to another broker for a while."""
    original = celery_app.conf.broker_url, celery_app.conf.broker_transport
    _forget_broker_connections()
    # The transport goes with the URL: the embedded broker's class would take a Redis URL for a folder.
    celery_app.conf.broker_url, celery_app.conf.broker_transport = broker_url, None
    try:
        yield
    finally:
        _forget_broker_connections()
        celery_app.conf.broker_url, celery_app.conf.broker_transport = original


def _forget_broker_connections() -> None:
    """Drop the pooled connections and producers: Celery's own reset, as in a freshly forked child."""
    celery_app._after_fork()


class Worker:
    def __init__(self, process: subprocess.Popen, log: Path):
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN
        while " ready." not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not start:\n{self.output()}")
            time.sleep(POLL)

    def kill(self) -> None:
        """SIGKILL for the whole group: the worker gets no chance to ack, report or clean up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@contextlib.contextmanager
def celery_worker(
    pool: str = "solo", concurrency: int = 1, empty: bool = True, **env: str
) -> Iterator[Worker]:
    """A worker on the queues celery and its vantage's probe queue (probe.outside unless `env` sets
    RELAYTEST_VANTAGE); `env` adds settings (RELAYTEST_...) for it."""
    if empty:
        empty_broker()
    vantage = env.get("RELAYTEST_VANTAGE", "outside")
    log = Path(tempfile.mkstemp(prefix="celery-worker-", suffix=".log")[1])
    environment = {**os.environ, "CELERY_BROKER_URL": REDIS_URL, "DATABASE_URL": database_url(), **env}
    # Celery's own switch for Django's system checks at start: the test process has run them (0.3 s a start).
    environment.setdefault("CELERY_SKIP_CHECKS", "1")
    command = [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", f"{probe_queue(vantage)},celery",
               "--pool", pool, "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
               "--loglevel", "INFO", "-n", f"test-{os.getpid()}-{vantage}@%h"]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process, log)
    try:
        worker.wait_ready()
        yield worker
    finally:
        # Killed, not stopped warmly: no test here is about the worker's shutdown, which waited up to
        # 10 s for a task still running (a tarpit's) and cost 0.35 s of CPU even when idle.
        worker.kill()
        log.unlink()


def wait_for_run(
    run: TestRun, until, within: float = FINISHED_WITHIN, worker: Worker | None = None
) -> TestRun:
    """Reload the run until `until(run)` holds; fail with the worker's log when it never does."""
    deadline = time.monotonic() + within
    while True:
        run.refresh_from_db()
        if until(run):
            return run
        if time.monotonic() > deadline:
            log = worker.output() if worker else ""
            pytest.fail(f"run {run.pk} stuck at {run.status} ({run.status_reason}):\n{log}")
        time.sleep(POLL)


def is_final(run: TestRun) -> bool:
    return not run.is_active
