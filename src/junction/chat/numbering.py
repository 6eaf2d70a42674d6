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
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from junction.chat.repository import CHAT_NUMBERS as CHAT_NUMBERS
from junction.chat.repository import MESSAGE_NUMBERS as MESSAGE_NUMBERS
from junction.chat.repository import NumberSequence, allocate_in_database, database_floor

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
