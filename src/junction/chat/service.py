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
from junction.platform.errors import Conflict, NotFound, ValidationFailed
from junction.platform.jobs import enqueue
from junction.platform.realtime import Broker

REFRESH_COUNTS_JOB = "chat.refresh_counts"
RECONCILE_COUNTS_JOB = "chat.reconcile_counts"
# Creates within one window share one counts job per parent, run once the window is over
# (plus a moment for the window's last transactions to commit): a burst costs one job.
COUNTS_WINDOW_SECONDS = 1.0
COUNTS_SETTLE_SECONDS = 0.25
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
        if await repository.application_id(session, token) is None:
            raise NotFound(f"Application {token} not found")
        raise NotFound(f"Chat {number} not found in application {token}")
    return chat_id


async def create_message(
    session: AsyncSession,
    allocator: NumberAllocator,
    broker: Broker | None,
    token: str,
    chat_number: int,
    body: str,
) -> CreatedMessage:
    chat_id = await _chat_id(session, token, chat_number)
    key = message_numbers_key(token, chat_number)
    number = await allocator.allocate(session, MESSAGE_NUMBERS, chat_id, key)
    for _ in range(MAX_NUMBER_ATTEMPTS):
        created_at = await repository.insert_message(session, chat_id, number, body)
        if created_at is not None:
            job_id = await _enqueue_counts(session, "chat", chat_id)
            message = MessagePublic(number=number, body=body, created_at=created_at)
            broadcast_after_commit(session, broker, token, chat_number, "message_created", message)
            return CreatedMessage(Accepted(job_id=str(job_id), number=number), message)
        number = await allocator.after_conflict(session, MESSAGE_NUMBERS, chat_id, key)
    raise Conflict("Could not allocate a message number; please retry")


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
    window = math.floor(time.time() / COUNTS_WINDOW_SECONDS)
    unique_key = f"{REFRESH_COUNTS_JOB}:{parent}:{parent_id}:{window}"
    # The window's job is queued until the window is over: joining it needs no insert,
    # and so never waits on the unique index behind another create's transaction.
    queued = await repository.queued_job_with_key(session, unique_key)
    if queued is not None:
        return queued
    run_at = (window + 1) * COUNTS_WINDOW_SECONDS + COUNTS_SETTLE_SECONDS
    enqueued = await enqueue(
        session,
        REFRESH_COUNTS_JOB,
        {parent: parent_id},
        run_at=datetime.fromtimestamp(run_at, UTC),
        unique_key=unique_key,
    )
    return enqueued.id


async def refresh_counts(session: AsyncSession, payload: dict[str, Any]) -> dict[str, int]:
    """Recount from the rows (idempotent): a chat's messages or an application's chats."""
    if "chat" in payload:
        count = await repository.refresh_messages_count(session, int(payload["chat"]))
        return {"messages_count": count or 0}
    count = await repository.refresh_chats_count(session, int(payload["application"]))
    return {"chats_count": count or 0}


async def reconcile_counts(session: AsyncSession) -> dict[str, int]:
    return await repository.reconcile_counts(session)
