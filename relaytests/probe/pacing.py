"""What every run in one event loop shares: the cap on hosts in flight, one connection at a time per
address and port, and a watch on the loop's own lag.

A worker process may run several suites in one event loop; the cap holds for all of them together,
so a portal that queues many targets cannot open hundreds of connections at once. The state lives
per event loop (asyncio's primitives belong to the loop they first wait in), the cap per setting.

The lag monitor is why a busy probe does not see tarpits everywhere: a reply is read when the loop
gets round to it, so under CPU load a fast server's reply looks late. The monitor sleeps in short
ticks and records how late each tick woke; ``SmtpSession`` subtracts the lag around a reply's
arrival from the reply's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

TICK = 0.05  # seconds between the lag monitor's wake-ups
KEPT_TICKS = 4096  # about three minutes of lag history
LOADED = 0.1  # seconds of lag that, when they are also a quarter of a reply's time, make it doubtful


class LagMonitor:
    """How late the event loop runs what is due: the lateness of a ``sleep(TICK)``, tick after tick."""

    def __init__(self) -> None:
        self._ticks: deque[tuple[float, float]] = deque(maxlen=KEPT_TICKS)  # (woke at, seconds late)
        self._task: asyncio.Task | None = None
        self._users = 0

    def start(self) -> None:
        self._users += 1
        if self._task is None:
            self._task = asyncio.ensure_future(self._watch())

    def stop(self) -> None:
        self._users -= 1
        if self._users == 0 and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _watch(self) -> None:
        while True:
            due = time.monotonic() + TICK
            await asyncio.sleep(TICK)
            woke = time.monotonic()
            self._ticks.append((woke, max(0.0, woke - due)))

    async def lag_around(self, moment: float) -> float:
        """The loop's lag when `moment` came: the lateness of the ticks that woke around it.

        A reply that arrived while the loop was blocked is read when the block ends, and so is the
        tick that was due during it; when that tick is still overdue, wait (briefly) for it to wake.
        An idle loop's ticks are on time, so a tarpit's replies are never waited on here.
        """
        if self._task is None or not self._ticks:
            return 0.0
        give_up = time.monotonic() + 2 * TICK
        while self._ticks[-1][0] < moment and time.monotonic() - self._ticks[-1][0] > TICK + LOADED:
            if time.monotonic() > give_up:
                break
            await asyncio.sleep(0)
        return max(
            (late for woke, late in self._ticks if moment - TICK <= woke <= moment + 2 * TICK), default=0.0
        )


def under_load(lag: float, delay: float) -> bool:
    """Was our loop's lag a large enough part of a reply's delay that one slow reply proves nothing?"""
    return lag >= max(LOADED, delay / 4)


@dataclass
class AddressLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding or waiting: the lock is forgotten when none is left


@dataclass
class LoopShare:
    """The state one event loop's runs share."""

    caps: dict[int, asyncio.Semaphore] = field(default_factory=dict)  # by size: the process has one setting
    lag: LagMonitor = field(default_factory=LagMonitor)
    addresses: dict[tuple[str, int], AddressLock] = field(default_factory=dict)

    def hosts_in_flight(self, cap: int) -> asyncio.Semaphore:
        return self.caps.setdefault(cap, asyncio.Semaphore(max(1, cap)))


_shares: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopShare] = weakref.WeakKeyDictionary()


def loop_share() -> LoopShare:
    """The running loop's share, made by its first run."""
    return _shares.setdefault(asyncio.get_running_loop(), LoopShare())


def lag_monitor() -> LagMonitor:
    """The running loop's lag monitor (idle, answering no lag, outside a run)."""
    share = _shares.get(asyncio.get_running_loop())
    return share.lag if share else LagMonitor()


@contextlib.asynccontextmanager
async def watching_lag(share: LoopShare) -> AsyncIterator[None]:
    share.lag.start()
    try:
        yield
    finally:
        share.lag.stop()


@contextlib.asynccontextmanager
async def host_slot(share: LoopShare, address: str, port: int, cap: int) -> AsyncIterator[None]:
    """Wait for the address to be free (another run may be testing it), then for a slot under the cap."""
    key = (address, port)
    entry = share.addresses.setdefault(key, AddressLock())
    entry.users += 1
    try:
        async with entry.lock, share.hosts_in_flight(cap):
            yield
    finally:
        entry.users -= 1
        if not entry.users:
            del share.addresses[key]  # a worker tests many addresses in its life
