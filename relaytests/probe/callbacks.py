"""The callbacks the engine's callers hand in (progress events, canary deliveries): a plain function
or a coroutine function, whichever suits the caller (the CLI remembers in memory, the portal writes
to the database through `sync_to_async`)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

Callback = Callable[[T], Awaitable[None] | None]


async def call(callback: Callback[T], argument: T) -> None:
    """Call the callback and, when it is a coroutine function, wait for it."""
    result = callback(argument)
    if inspect.isawaitable(result):
        await result
