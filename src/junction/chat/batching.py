"""Message creates grouped into shared transactions: one commit for many messages.

A durable create costs one flush of the database's write-ahead log, a few milliseconds
on ordinary disks, whatever the row's size: one transaction per message caps a process
at a few hundred messages per second. The batcher queues the creates that arrive while
a transaction is under way and writes them together in the next one (a few statements,
one commit), so the cost of the commit is shared by every message in it. Nothing waits
on a timer: an idle server writes a lone message at once.

Every caller still gets an answer only once its own row is committed, readable and
searchable. The batch's numbers are taken from Redis before its transaction when Redis
has the chats' keys, in one round trip (a chat's key raised by its count of messages), so
the transaction holds no lock while waiting on Redis. If a batch's transaction fails, each
of its messages is retried alone, with its number, so one bad create cannot fail the
others.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

import structlog

from junction.chat import service
from junction.chat.numbering import NumberAllocator
from junction.chat.service import CreatedMessage, MessageRequest
from junction.platform.db import Database
from junction.platform.errors import JunctionError
from junction.platform.realtime import Broker

log = structlog.get_logger(__name__)

# Bounds one transaction's statement size and the wait of the last message in it.
MAX_BATCH = 256


@dataclass
class _Pending:
    request: MessageRequest
    answer: asyncio.Future[CreatedMessage] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, outcome: CreatedMessage | BaseException) -> None:
        if self.answer.done():  # the client went away; its message stands
            return
        if isinstance(outcome, BaseException):
            self.answer.set_exception(outcome)
        else:
            self.answer.set_result(outcome)


class MessageBatcher:
    """One per process; ``create`` is what a request awaits."""

    def __init__(
        self, database: Database, allocator: NumberAllocator, broker: Broker | None
    ) -> None:
        self.database = database
        self.allocator = allocator
        self.broker = broker
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None

    async def create(self, token: str, chat_number: int, body: str) -> CreatedMessage:
        """The message, once committed; raises the error that refused it."""
        pending = _Pending(MessageRequest(token, chat_number, body))
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_while_queued())
        return await asyncio.shield(pending.answer)

    async def _write_while_queued(self) -> None:
        """Runs only while creates are queued, so an idle app holds no task."""
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            await self._write(batch)

    async def _number(self, batch: list[_Pending]) -> None:
        """Give each unnumbered request the number Redis can give outside a transaction,
        all in one round trip; a request retried alone keeps the number it was given."""
        unnumbered = [pending for pending in batch if pending.request.number is None]
        keys = [pending.request.numbers_key for pending in unnumbered]
        numbers = await self.allocator.allocate_many_if_seeded(keys)
        for pending, number in zip(unnumbered, numbers, strict=True):
            pending.request = replace(pending.request, number=number)

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            await self._number(batch)
            async with self.database.transaction() as session:
                outcomes = await service.create_messages(
                    session, self.allocator, self.broker, [p.request for p in batch]
                )
        except Exception as exc:
            if len(batch) == 1:
                if not isinstance(exc, JunctionError):
                    log.exception("creating a message failed")
                batch[0].settle(exc)
                return
            log.warning("a batch of messages failed; retrying each alone", error=str(exc))
            for pending in batch:
                await self._write([pending])
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            pending.settle(outcome)
