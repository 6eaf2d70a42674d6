"""Message creates grouped into shared transactions: one commit for many messages.

A durable create costs one flush of the database's write-ahead log, a few milliseconds
on ordinary disks, whatever the row's size: one transaction per message caps a process
at a few hundred messages per second. The batcher queues the creates that arrive while
a transaction is under way and writes them together in the next one (a few statements,
one commit; ``platform.coalescing``), so the cost of the commit is shared by every
message in it. Nothing waits on a timer: an idle server writes a lone message at once.

Every caller still gets an answer only once its own row is committed, readable and
searchable. The batch's numbers are taken from Redis before its transaction when Redis
has the chats' keys, in one round trip (a chat's key raised by its count of messages), so
the transaction holds no lock while waiting on Redis. If a batch's transaction fails, each
of its messages is retried alone, with its number, so one bad create cannot fail the
others.
"""

from __future__ import annotations

from dataclasses import replace

import structlog

from junction.chat import service
from junction.chat.numbering import NumberAllocator
from junction.chat.service import CreatedMessage, MessageRequest
from junction.platform.coalescing import Coalescer
from junction.platform.db import Database
from junction.platform.errors import JunctionError
from junction.platform.realtime import Broker

log = structlog.get_logger(__name__)

# Bounds one transaction's statement size and the wait of the last message in it.
MAX_BATCH = 256


class MessageBatcher:
    """One per process; ``create`` is what a request awaits."""

    def __init__(
        self, database: Database, allocator: NumberAllocator, broker: Broker | None
    ) -> None:
        self.database = database
        self.allocator = allocator
        self.broker = broker
        self._creates = Coalescer(self._write, MAX_BATCH)

    async def create(self, token: str, chat_number: int, body: str) -> CreatedMessage:
        """The message, once committed; raises the error that refused it."""
        return await self._creates.submit(MessageRequest(token, chat_number, body))

    async def _numbered(self, requests: list[MessageRequest]) -> list[MessageRequest]:
        """Each unnumbered request with the number Redis can give outside a transaction,
        all in one round trip; a request retried alone keeps the number it was given."""
        unnumbered = [index for index, request in enumerate(requests) if request.number is None]
        keys = [requests[index].numbers_key for index in unnumbered]
        numbers = await self.allocator.allocate_many_if_seeded(keys)
        numbered = list(requests)
        for index, number in zip(unnumbered, numbers, strict=True):
            numbered[index] = replace(requests[index], number=number)
        return numbered

    async def _write(
        self, requests: list[MessageRequest]
    ) -> list[CreatedMessage | JunctionError | Exception]:
        try:
            requests = await self._numbered(requests)
            async with self.database.transaction() as session:
                outcomes = await service.create_messages(
                    session, self.allocator, self.broker, requests
                )
        except Exception as exc:
            if len(requests) == 1:
                if not isinstance(exc, JunctionError):
                    log.exception("creating a message failed")
                return [exc]
            log.warning("a batch of messages failed; retrying each alone", error=str(exc))
            return [outcome for request in requests for outcome in await self._write([request])]
        return list(outcomes)
