"""Chat and message numbers: 1, 2, 3 ... per application and per chat, never reused.

Two paths, one guarantee:

* **Redis** (when configured): ``INCR`` on one key per parent, atomic across every web
  process. A missing key (Redis flushed, failed over, or never used) is seeded from the
  database first: the greater of the parent's counter column and the highest number
  stored, so a lost Redis never hands out a number again. Seeding and incrementing are
  one Lua script, so concurrent seeders cannot both win.
* **The database** otherwise (or while Redis does not answer): the parent row's counter
  column is raised with ``UPDATE ... RETURNING`` in the request's transaction. The row
  lock serialises allocations per parent on PostgreSQL; on SQLite the write transaction
  (BEGIN IMMEDIATE) already is.

The unique indexes on ``(parent, number)`` are the last line of defence: the insert uses
``ON CONFLICT DO NOTHING`` and, if a number turns out to be taken (a Redis key lost
while a create was in flight, or a switch between the paths), the caller asks for a
number again with :func:`NumberAllocator.after_conflict`, which raises Redis past every
stored number first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from junction.chat.models import Application, Chat, Message

log = structlog.get_logger(__name__)

# Raise the key to at least ARGV[1] (the database's floor), then increment it.
_RAISE_AND_INCREMENT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if current < floor then redis.call('SET', KEYS[1], floor) end
return redis.call('INCR', KEYS[1])
"""
# Raise each existing KEYS[i] by ARGV[i] and return its new value; 0 for a missing key,
# which the caller must first seed from the database.
_INCREMENT_EACH_IF_PRESENT = """
local last = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then last[i] = redis.call('INCRBY', key, ARGV[i])
  else last[i] = 0 end
end
return last
"""


@dataclass(frozen=True)
class NumberSequence:
    """Where the numbers of one kind of row live: the parent's counter, the rows."""

    kind: str
    counter: InstrumentedAttribute[int]
    parent_id: InstrumentedAttribute[int]
    parent_key: InstrumentedAttribute[int]
    number: InstrumentedAttribute[int]


CHAT_NUMBERS = NumberSequence(
    "chats", Application.last_chat_number, Application.id, Chat.application_id, Chat.number
)
MESSAGE_NUMBERS = NumberSequence(
    "messages", Chat.last_message_number, Chat.id, Message.chat_id, Message.number
)


def chat_numbers_key(application_token: str) -> str:
    """Keys are named by the token, never reused, rather than by a row id that may be."""
    return f"junction:chat:{application_token}:chat-numbers"


def message_numbers_key(application_token: str, chat_number: int) -> str:
    return f"junction:chat:{application_token}:{chat_number}:message-numbers"


class NumberAllocator:
    def __init__(self, redis: Redis | None) -> None:
        self.redis = redis
        if redis is not None:
            self._raise_and_increment_script = redis.register_script(_RAISE_AND_INCREMENT)
            self._increment_each_if_present = redis.register_script(_INCREMENT_EACH_IF_PRESENT)

    async def allocate(
        self, session: AsyncSession, sequence: NumberSequence, parent_id: int, key: str
    ) -> int:
        """The next number of ``sequence`` under ``parent_id``; ``key`` names its Redis key."""
        if self.redis is not None:
            try:
                [number] = await self._increment_each_if_present(keys=[key], args=[1])
                if not number:
                    floor = await database_floor(session, sequence, parent_id)
                    number = await self._raise_and_increment(key, floor)
                return int(number)
            except RedisError as exc:
                log.warning("redis numbering failed, using the database", error=str(exc))
        return await allocate_in_database(session, sequence, parent_id)

    async def allocate_many_if_seeded(self, keys: Sequence[str]) -> list[int | None]:
        """The next number for each of ``keys`` (repeats allowed), in order, from Redis in
        one round trip without touching the database: a key asked for n times is raised
        by n at once.

        None for a key that must first be seeded from the database, and for every key when
        there is no Redis or it does not answer: the caller then uses :meth:`allocate`.
        """
        if self.redis is None or not keys:
            return [None] * len(keys)
        wanted = Counter(keys)
        try:
            raised = await self._increment_each_if_present(
                keys=list(wanted), args=list(wanted.values())
            )
        except RedisError as exc:
            log.warning("redis numbering failed, using the database", error=str(exc))
            return [None] * len(keys)
        # The first number of each key's range, handed out in the order asked for.
        following = {
            key: last - count + 1 if last else None
            for (key, count), last in zip(wanted.items(), raised, strict=True)
        }
        numbers: list[int | None] = []
        for key in keys:
            number = following[key]
            numbers.append(number)
            if number is not None:
                following[key] = number + 1
        return numbers

    async def after_conflict(
        self, session: AsyncSession, sequence: NumberSequence, parent_id: int, key: str
    ) -> int:
        """A fresh number once an insert found its number taken."""
        if self.redis is not None:
            try:
                floor = await database_floor(session, sequence, parent_id)
                return await self._raise_and_increment(key, floor)
            except RedisError as exc:
                log.warning("redis numbering failed, using the database", error=str(exc))
        return await allocate_in_database(session, sequence, parent_id)

    async def _raise_and_increment(self, key: str, floor: int) -> int:
        result: Any = await self._raise_and_increment_script(keys=[key], args=[floor])
        return int(result)


def _highest_stored(sequence: NumberSequence, parent_id: int) -> Any:
    return (
        select(func.coalesce(func.max(sequence.number), 0))
        .where(sequence.parent_key == parent_id)
        .scalar_subquery()
    )


def _greatest(session: AsyncSession, *values: Any) -> Any:
    # SQLite's two-argument max() is PostgreSQL's greatest().
    if session.get_bind().dialect.name == "sqlite":
        return func.max(*values)
    return func.greatest(*values)


async def database_floor(session: AsyncSession, sequence: NumberSequence, parent_id: int) -> int:
    """The highest number the database knows of: stored, or handed out by its counter."""
    floor = await session.scalar(
        select(_greatest(session, sequence.counter, _highest_stored(sequence, parent_id))).where(
            sequence.parent_id == parent_id
        )
    )
    return int(floor or 0)


async def allocate_in_database(
    session: AsyncSession, sequence: NumberSequence, parent_id: int
) -> int:
    """Raise the parent's counter past every stored number, in the caller's transaction."""
    raised = _greatest(session, sequence.counter, _highest_stored(sequence, parent_id)) + 1
    number = await session.scalar(
        update(sequence.parent_id.class_)
        .where(sequence.parent_id == parent_id)
        .values({sequence.counter: raised})
        .returning(sequence.counter)
        .execution_options(synchronize_session=False)
    )
    assert number is not None, "the parent row exists: the caller has just read it"
    return int(number)
