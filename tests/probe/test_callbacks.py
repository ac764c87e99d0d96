"""The engine calls what its callers hand in, a plain function or a coroutine function alike."""

from __future__ import annotations

import asyncio

from relaytests.probe.callbacks import call


def test_a_plain_function_is_called():
    seen = []
    asyncio.run(call(seen.append, "event"))
    assert seen == ["event"]


def test_a_coroutine_function_is_awaited_to_its_end():
    seen = []

    async def remember(event: str) -> None:
        await asyncio.sleep(0)
        seen.append(event)

    asyncio.run(call(remember, "event"))
    assert seen == ["event"]
