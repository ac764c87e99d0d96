"""One event loop per worker process, on a thread of its own, shared by every run the process works on.

With Celery's threads pool (`--pool threads --concurrency N`) one process works on N run_suite tasks
at once. Each task thread hands its run's coroutine to this loop and waits for it, so dozens of runs
share one loop, and with it the engine's per-loop state (`probe.pacing.LoopShare`): the cap on hosts in
flight (RELAYTEST_MAX_HOSTS_IN_FLIGHT) and one connection per address and port hold for the whole
process, not for each run. Under prefork or solo it works the same, with one run per process at a time.

The loop's database work (progress, heartbeats) goes to a few threads of its own (`database`): one
thread would queue the writes of dozens of runs behind each other.

The threads pool has no time limits of its own (Celery enforces them by signals in prefork children
only), so `run` enforces the run's deadline itself: past it, the coroutine is cancelled and given a
grace period to write what it has.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# Threads for the loop's database writes: 64 runs write about 64 times a second, some 12 ms each on
# PostgreSQL under load, more than one thread can keep up with.
DATABASE_THREADS = 4


class Overran(Exception):
    """The coroutine was still running at its deadline; it has been cancelled."""


class _SharedLoop:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._database: concurrent.futures.ThreadPoolExecutor | None = None

    def get(self) -> asyncio.AbstractEventLoop:
        """The process's loop, started on its first use."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                thread = threading.Thread(target=self._loop.run_forever, name="probe event loop", daemon=True)
                thread.start()
            return self._loop

    def database(self) -> concurrent.futures.ThreadPoolExecutor:
        """The threads that the loop's runs write to the database on."""
        with self._lock:
            if self._database is None:
                self._database = concurrent.futures.ThreadPoolExecutor(
                    DATABASE_THREADS, thread_name_prefix="probe database"
                )
            return self._database

    def forget(self) -> None:
        """In a forked child: the parent's threads did not come along, so the child starts its own."""
        self._lock = threading.Lock()
        self._loop = None
        self._database = None


shared_loop = _SharedLoop()
os.register_at_fork(after_in_child=shared_loop.forget)


def run(coroutine: Coroutine[Any, Any, T], *, within: float, grace: float) -> T:
    """Run the coroutine on the process's loop and return its result; Overran after `within` seconds.

    Whatever stops the wait (the deadline, prefork's SoftTimeLimitExceeded raised in this thread, a
    worker shutting down) cancels the coroutine and waits up to `grace` seconds for its cleanup (its
    last progress write) before the exception goes on, so the caller's next write comes after it.
    """
    finished = threading.Event()
    future = asyncio.run_coroutine_threadsafe(_signalling(coroutine, finished), shared_loop.get())
    try:
        done, _ = concurrent.futures.wait([future], timeout=within)
        if not done:
            raise Overran
    except BaseException:
        future.cancel()
        finished.wait(grace)
        raise
    return future.result()


async def _signalling(coroutine: Coroutine[Any, Any, T], finished: threading.Event) -> T:
    try:
        return await coroutine
    finally:
        finished.set()
