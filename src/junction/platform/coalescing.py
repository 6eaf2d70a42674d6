"""Calls made while one is in flight, sent together in the next one.

For work whose round trip costs more than what it carries: a transaction's commit (chat
message creates), a Redis command (rate-limit checks). The first call goes at once; the
ones that arrive while it is in flight go together in the next, in arrival order, at most
``max_batch`` at a time. Nothing waits on a timer, and an idle process holds no task.

Written by hand: asyncio has no such primitive, and the batching libraries found gather
calls for a fixed delay, which every lone call would then pay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]],
        max_batch: int,
    ) -> None:
        """``send(items)`` answers each item, in order, with its result or its error."""
        self._send = send
        self._max_batch = max_batch
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, answer))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_while_queued())
        # A caller that goes away cancels only its answer: its item stays in the batch (a
        # message create it asked for still stands), and its answer is then not set.
        return await answer

    async def _send_while_queued(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            self._queue = self._queue[self._max_batch :]
            try:
                outcomes = await self._send([item for item, _ in batch])
            except asyncio.CancelledError as exc:  # the process is stopping
                stranded, self._queue = batch + self._queue, []
                for _, answer in stranded:
                    _settle(answer, exc)
                raise
            except Exception as exc:  # never leave a caller waiting forever
                outcomes = [exc] * len(batch)
            for (_, answer), outcome in zip(batch, outcomes, strict=True):
                _settle(answer, outcome)


def _settle(answer: asyncio.Future[Result], outcome: Result | BaseException) -> None:
    if answer.done():  # its caller went away
        return
    if isinstance(outcome, BaseException):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)
