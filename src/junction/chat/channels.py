"""``ChatChannel``: one chat's messages, live, as they are created and edited.

Identified by ``{"channel": "ChatChannel", "application_token": "...", "chat_number": N}``
on ``/cable`` and ``/api/v1/stream``. As with the HTTP routes, the application token is
the capability: whoever holds it may read the chat, so no API key is asked for, and a
token or chat that does not exist is rejected.

Broadcasts are ``{"type": "message_created" | "message_updated", "message": {"number",
"body", "created_at"}}``, the body the HTTP routes answer with: no row id. They go out
after the transaction that made the change commits, never when it rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from junction.chat import repository
from junction.chat.schemas import MessagePublic
from junction.platform.realtime import (
    Broker,
    Channel,
    SubscriptionRejected,
    SubscriptionRequest,
    publish_after_commit,
)

MAX_TOKEN_LENGTH = 200
MAX_NUMBER = 2_147_483_647
MessageEvent = Literal["message_created", "message_updated"]


def chat_stream(application_token: str, chat_number: int) -> str:
    """Named as clients name the chat, so the publisher needs no look-up to find it."""
    return f"chat:{application_token}:{chat_number}"


class ChatChannel(Channel):
    name = "ChatChannel"

    async def streams(self, request: SubscriptionRequest) -> Sequence[str]:
        token = _token(request.params.get("application_token"))
        number = _chat_number(request.params.get("chat_number"))
        async with request.database.reading() as session:
            if await repository.chat_id_in(session, token, number) is None:
                raise SubscriptionRejected(f"Chat {number} not found in application {token}")
        return [chat_stream(token, number)]


def _token(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TOKEN_LENGTH:
        raise SubscriptionRejected("application_token: must be an application's token")
    return value


def _chat_number(value: Any) -> int:
    # bool is an int to Python, but true is no chat number.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_NUMBER:
        raise SubscriptionRejected("chat_number: must be a chat's number")
    return value


def broadcast_after_commit(
    session: AsyncSession,
    broker: Broker | None,
    application_token: str,
    chat_number: int,
    event: MessageEvent,
    message: MessagePublic,
) -> None:
    """Announce ``message`` on its chat's channel once ``session`` commits.

    ``broker`` is None where no live channels run (the CLI, scripts): nothing to tell.
    """
    if broker is None:
        return
    payload = {"type": event, "message": message.model_dump(mode="json")}
    publish_after_commit(session, broker, chat_stream(application_token, chat_number), payload)
