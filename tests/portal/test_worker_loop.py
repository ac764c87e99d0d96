"""The worker process's shared event loop: every task thread's run on one loop, deadlines kept by it.

These need no database: the loop is plain asyncio on a thread (relaytests/worker_loop.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from relaytests import worker_loop


def test_runs_from_many_threads_share_one_loop_and_run_at_the_same_time():
    threads = 8
    arrived: list[int] = []
    all_in = asyncio.Event()  # bound to the first loop that waits on it: another loop could not

    async def overlapping() -> asyncio.AbstractEventLoop:
        arrived.append(1)
        if len(arrived) == threads:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 5)  # one after another, the first would time out here
        return asyncio.get_running_loop()

    with ThreadPoolExecutor(threads) as pool:
        loops = list(pool.map(lambda _: worker_loop.run(overlapping(), within=10, grace=1), range(threads)))

    assert len(set(loops)) == 1
    assert loops[0] is worker_loop.shared_loop.get()


def test_a_run_past_its_deadline_is_cancelled_and_cleans_up_before_the_caller_goes_on():
    cleaned_up = threading.Event()

    async def stalls():
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.1)  # its last progress write
            cleaned_up.set()

    with pytest.raises(worker_loop.Overran):
        worker_loop.run(stalls(), within=0.2, grace=5)

    assert cleaned_up.is_set()


class SoftLimit(Exception):
    """What prefork's soft time limit raises in the task's thread (SoftTimeLimitExceeded)."""


def test_an_exception_raised_in_the_waiting_thread_cancels_the_run_too():
    cancelled = threading.Event()

    async def stalls():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def soft_limit(signum, frame):
        raise SoftLimit

    previous = signal.signal(signal.SIGALRM, soft_limit)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with pytest.raises(SoftLimit):
            worker_loop.run(stalls(), within=30, grace=5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    assert cancelled.is_set()


async def _answer() -> int:
    return 42


def test_a_forked_child_gets_a_loop_of_its_own():
    """The parent's loop thread does not survive a fork (prefork's children): the child starts one."""
    assert worker_loop.run(_answer(), within=5, grace=1) == 42  # the parent's loop exists
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports by its exit code
        try:
            code = 0 if worker_loop.run(_answer(), within=5, grace=1) == 42 else 1
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
