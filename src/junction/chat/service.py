"""The chat domain's rules: tokens, numbering, committed creates, counts.

Services take the caller's session and never commit. A create writes its row and
enqueues its follow-up job (counts) in the caller's transaction: once the 202 is sent
the row is readable and searchable, and the job exists too. Message creates and edits
are announced on the chat's live channel once that transaction commits.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from junction.chat import repository
from junction.chat.channels import broadcast_after_commit
from junction.chat.models import Application, Chat, Message
from junction.chat.numbering import (
    CHAT_NUMBERS,
    MESSAGE_NUMBERS,
    NumberAllocator,
    chat_numbers_key,
    message_numbers_key,
)
from junction.chat.schemas import Accepted, MessagePublic
from junction.chat.search import query_words
from junction.platform.db import run_after_commit
from junction.platform.errors import Conflict, JunctionError, NotFound, ValidationFailed
from junction.platform.jobs import enqueue_unique
from junction.platform.realtime import Broker

REFRESH_COUNTS_JOB = "chat.refresh_counts"
RECONCILE_COUNTS_JOB = "chat.reconcile_counts"
# Creates within one window share one counts job per parent, run once the window is over
# (plus a moment for the window's last transactions to commit): a burst costs one job.
# Five seconds rather than one: with messages spread over many chats, a job per chat per
# second took a fifth of the server's CPU (docs/chat.md), and the seed lets counts lag.
COUNTS_WINDOW_SECONDS = 5.0
COUNTS_SETTLE_SECONDS = 0.25
# Each parent's windows start at a phase of their own, so that their jobs fall due spread
# over the period: with one phase for all, a hundred chats' recounts ran at one instant
# and the creates beside them waited (docs/chat.md).
GOLDEN_RATIO_FRACTION = 0.6180339887
# A number found taken (see numbering.py) is replaced; more than this means a fault.
MAX_NUMBER_ATTEMPTS = 5
TOKEN_BYTES = 20


@dataclass(frozen=True)
class CreatedMessage:
    accepted: Accepted
    message: MessagePublic


def new_token() -> str:
    """160 random bits, hex: unguessable, URL-safe."""
    return secrets.token_hex(TOKEN_BYTES)


async def create_application(session: AsyncSession, name: str) -> Application:
    return await repository.add_application(session, new_token(), name)


async def get_application(session: AsyncSession, token: str) -> Application:
    application = await repository.application_by_token(session, token)
    if application is None:
        raise NotFound(f"Application {token} not found")
    return application


async def rename_application(session: AsyncSession, token: str, name: str) -> Application:
    application = await get_application(session, token)
    application.name = name
    await session.flush()
    return application


async def create_chat(session: AsyncSession, allocator: NumberAllocator, token: str) -> Accepted:
    application_id = await repository.application_id(session, token)
    if application_id is None:
        raise NotFound(f"Application {token} not found")
    key = chat_numbers_key(token)
    number = await allocator.allocate(session, CHAT_NUMBERS, application_id, key)
    for _ in range(MAX_NUMBER_ATTEMPTS):
        if await repository.insert_chat(session, application_id, number) is not None:
            job_id = await _enqueue_counts(session, "application", application_id)
            return Accepted(job_id=str(job_id), number=number)
        number = await allocator.after_conflict(session, CHAT_NUMBERS, application_id, key)
    raise Conflict("Could not allocate a chat number; please retry")


async def get_chat(session: AsyncSession, token: str, number: int) -> Chat:
    chat = await repository.chat_in(session, token, number)
    if chat is None:
        raise NotFound(f"Chat {number} not found in application {token}")
    return chat


async def list_chats(session: AsyncSession, token: str, offset: int, limit: int) -> Sequence[Chat]:
    application_id = await repository.application_id(session, token)
    if application_id is None:
        raise NotFound(f"Application {token} not found")
    return await repository.chats_of(session, application_id, offset, limit)


async def _chat_id(session: AsyncSession, token: str, number: int) -> int:
    chat_id = await repository.chat_id_in(session, token, number)
    if chat_id is None:
        raise await _missing_chat(session, token, number)
    return chat_id


async def _missing_chat(session: AsyncSession, token: str, number: int) -> NotFound:
    if await repository.application_id(session, token) is None:
        return NotFound(f"Application {token} not found")
    return NotFound(f"Chat {number} not found in application {token}")


async def create_message(
    session: AsyncSession,
    allocator: NumberAllocator,
    broker: Broker | None,
    token: str,
    chat_number: int,
    body: str,
) -> CreatedMessage:
    request = MessageRequest(token, chat_number, body)
    [outcome] = await create_messages(session, allocator, broker, [request])
    if isinstance(outcome, JunctionError):
        raise outcome
    return outcome


async def create_messages(
    session: AsyncSession,
    allocator: NumberAllocator,
    broker: Broker | None,
    requests: Sequence[MessageRequest],
) -> list[CreatedMessage | JunctionError]:
    """Create many messages in the caller's transaction, in a few statements whatever
    their number: one chat look-up, one insert, and a counts-job look-up only for a chat
    whose job this process has not seen yet in the current window.

    Each request gets its message or the error that refused it (an unknown chat).
    """
    pairs = {(request.token, request.chat_number) for request in requests}
    chat_ids = await repository.chat_ids_in(session, pairs)
    outcomes: list[CreatedMessage | JunctionError | None] = [None] * len(requests)
    rows: list[_NewRow] = []
    # In chat order, so that allocations locking chat rows take the locks in one order.
    for index, request in sorted(enumerate(requests), key=lambda p: chat_ids.get(p[1].key, 0)):
        chat_id = chat_ids.get(request.key)
        if chat_id is None:
            outcomes[index] = await _missing_chat(session, request.token, request.chat_number)
            continue
        number = request.number or await allocator.allocate(
            session, MESSAGE_NUMBERS, chat_id, request.numbers_key
        )
        rows.append(_NewRow(index, chat_id, number, request))
    await _insert_rows(session, allocator, rows)
    jobs = await _counts_jobs(session, {row.chat_id: row.request.key for row in rows})
    for row in rows:
        outcomes[row.index] = _created(session, broker, row, jobs)
    return [outcome for outcome in outcomes if outcome is not None]


@dataclass(frozen=True)
class MessageRequest:
    """A message to create; ``number`` is set when one was taken from Redis beforehand."""

    token: str
    chat_number: int
    body: str
    number: int | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.token, self.chat_number)

    @property
    def numbers_key(self) -> str:
        return message_numbers_key(self.token, self.chat_number)


@dataclass
class _NewRow:
    index: int
    chat_id: int
    number: int
    request: MessageRequest
    created_at: datetime | None = None
    error: JunctionError | None = None


async def _insert_rows(
    session: AsyncSession, allocator: NumberAllocator, rows: list[_NewRow]
) -> None:
    """One INSERT for all rows; a row whose number was taken gets a fresh one, alone."""
    values = [(row.chat_id, row.number, row.request.body) for row in rows]
    inserted = await repository.insert_messages(session, values)
    for row in rows:
        # pop: should two rows carry one number, only the first was inserted.
        row.created_at = inserted.pop((row.chat_id, row.number), None)
        if row.created_at is None:
            await _insert_after_conflict(session, allocator, row)


async def _insert_after_conflict(
    session: AsyncSession, allocator: NumberAllocator, row: _NewRow
) -> None:
    for _ in range(MAX_NUMBER_ATTEMPTS):
        row.number = await allocator.after_conflict(
            session, MESSAGE_NUMBERS, row.chat_id, row.request.numbers_key
        )
        row.created_at = await repository.insert_message(
            session, row.chat_id, row.number, row.request.body
        )
        if row.created_at is not None:
            return
    row.error = Conflict("Could not allocate a message number; please retry")


def _created(
    session: AsyncSession, broker: Broker | None, row: _NewRow, jobs: dict[int, int]
) -> CreatedMessage | JunctionError:
    if row.created_at is None:
        return row.error or Conflict("Could not allocate a message number; please retry")
    request = row.request
    message = MessagePublic(number=row.number, body=request.body, created_at=row.created_at)
    broadcast_after_commit(
        session, broker, request.token, request.chat_number, "message_created", message
    )
    return CreatedMessage(Accepted(job_id=str(jobs[row.chat_id]), number=row.number), message)


async def list_messages(
    session: AsyncSession, token: str, chat_number: int, offset: int, limit: int
) -> Sequence[Message]:
    chat_id = await _chat_id(session, token, chat_number)
    return await repository.messages_of(session, chat_id, offset, limit)


async def get_message(session: AsyncSession, token: str, chat_number: int, number: int) -> Message:
    chat_id = await _chat_id(session, token, chat_number)
    message = await repository.message_in(session, chat_id, number)
    if message is None:
        raise NotFound(f"Message {number} not found in chat {chat_number}")
    return message


async def edit_message(
    session: AsyncSession,
    broker: Broker | None,
    token: str,
    chat_number: int,
    number: int,
    body: str,
) -> MessagePublic:
    message = await get_message(session, token, chat_number, number)
    repository.set_message_body(message, body)
    await session.flush()
    edited = MessagePublic(number=message.number, body=message.body, created_at=message.created_at)
    broadcast_after_commit(session, broker, token, chat_number, "message_updated", edited)
    return edited


async def search_messages(
    session: AsyncSession, token: str, chat_number: int, query: str, offset: int, limit: int
) -> list[MessagePublic]:
    words = query_words(query)
    if not words:
        raise ValidationFailed("q: must contain at least one letter or digit")
    chat_id = await _chat_id(session, token, chat_number)
    rows = await repository.search_messages(session, chat_id, words, offset, limit)
    return [MessagePublic(number=n, body=b, created_at=c) for n, b, c in rows]


async def _enqueue_counts(session: AsyncSession, parent: str, parent_id: int) -> int:
    window = _counts_window(parent_id)
    # The window's job is queued until the window is over, so a create joins it by a read.
    key = _counts_key(parent, parent_id, window)
    run_at = _counts_run_at(parent_id, window)
    enqueued = await enqueue_unique(
        session, REFRESH_COUNTS_JOB, {key: {parent: parent_id}}, run_at=run_at
    )
    return enqueued[key].id


class _KnownCountsJobs:
    """The counts jobs of current windows that this process has seen committed.

    A create joining one of them needs no look-up. Keyed by token and chat number, never
    reused, rather than by a row id, which SQLite may hand out again after a delete.
    """

    def __init__(self) -> None:
        self._newest_window = -1
        self._jobs: dict[tuple[tuple[str, int], int], int] = {}

    def get(self, chat: tuple[str, int], window: int) -> int | None:
        if window > self._newest_window:
            # Chats' windows are at most one apart: the ones before are over for all.
            self._newest_window = window
            self._jobs = {known: job for known, job in self._jobs.items() if known[1] >= window - 1}
        return self._jobs.get((chat, window))

    def add(self, chat: tuple[str, int], window: int, job_id: int) -> None:
        if window >= self._newest_window - 1:
            self._jobs[(chat, window)] = job_id


_known_counts_jobs = _KnownCountsJobs()


async def _counts_jobs(session: AsyncSession, chats: dict[int, tuple[str, int]]) -> dict[int, int]:
    """Each chat's counts job of its current window, joined or enqueued."""
    jobs: dict[int, int] = {}
    unknown: dict[str, tuple[int, int]] = {}
    for chat_id, chat in chats.items():
        window = _counts_window(chat_id)
        known = _known_counts_jobs.get(chat, window)
        if known is not None:
            jobs[chat_id] = known
        else:
            unknown[_counts_key("chat", chat_id, window)] = (chat_id, window)
    enqueued = await enqueue_unique(
        session,
        REFRESH_COUNTS_JOB,
        {key: {"chat": chat_id} for key, (chat_id, _) in unknown.items()},
        run_at={key: _counts_run_at(*chat_window) for key, chat_window in unknown.items()},
    )
    for unique_key, (chat_id, window) in unknown.items():
        job = enqueued[unique_key]
        jobs[chat_id] = job.id
        if job.created:
            _remember_after_commit(session, chats[chat_id], window, job.id)
        else:
            _known_counts_jobs.add(chats[chat_id], window, job.id)
    return jobs


def _remember_after_commit(
    session: AsyncSession, chat: tuple[str, int], window: int, job_id: int
) -> None:
    """A job enqueued here exists for others only once this transaction commits."""
    run_after_commit(session, lambda: _known_counts_jobs.add(chat, window, job_id))


def _counts_key(parent: str, parent_id: int, window: int) -> str:
    return f"{REFRESH_COUNTS_JOB}:{parent}:{parent_id}:{window}"


def _counts_phase(parent_id: int) -> float:
    """Where in each period a parent's windows start: ids spread by the golden ratio."""
    return (parent_id * GOLDEN_RATIO_FRACTION) % 1.0 * COUNTS_WINDOW_SECONDS


def _counts_window(parent_id: int) -> int:
    return math.floor((time.time() - _counts_phase(parent_id)) / COUNTS_WINDOW_SECONDS)


def _counts_run_at(parent_id: int, window: int) -> datetime:
    """Just after the window ends: one recount for every create in it."""
    ends = (window + 1) * COUNTS_WINDOW_SECONDS + _counts_phase(parent_id)
    return datetime.fromtimestamp(ends + COUNTS_SETTLE_SECONDS, UTC)


async def refresh_counts(session: AsyncSession, payload: dict[str, Any]) -> dict[str, int]:
    """Recount from the rows (idempotent): a chat's messages or an application's chats."""
    if "chat" in payload:
        count = await repository.refresh_messages_count(session, int(payload["chat"]))
        return {"messages_count": count or 0}
    count = await repository.refresh_chats_count(session, int(payload["application"]))
    return {"chats_count": count or 0}


async def reconcile_counts(session: AsyncSession) -> dict[str, int]:
    return await repository.reconcile_counts(session)
