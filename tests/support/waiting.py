"""Waiting for something to happen: a deadline, never a speed assertion."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 30.0,
    what: str | Callable[[], str] = "the condition",
) -> T:
    """Call ``check`` (a coroutine function, or a lambda returning an awaitable) until it
    answers something truthy, and return that answer. At the deadline, fail with ``what``
    (a string, or a function describing the last state seen)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            description = what if isinstance(what, str) else what()
            raise AssertionError(f"{description} did not happen within {timeout} s")
        await asyncio.sleep(0.05)
