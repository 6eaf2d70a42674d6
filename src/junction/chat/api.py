"""The routes of seed 001: applications, chats, messages and message search.

Paths, bodies, status codes and fields are the seed's, so its curl examples work as
written. Lists stay plain JSON arrays; ``page`` / ``per_page`` select a page and a
``Link: <...>; rel="next"`` header says when there is another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import ValidationError

from junction.chat import service
from junction.chat.batching import MessageBatcher
from junction.chat.models import Application, Chat, Message
from junction.chat.numbering import NumberAllocator
from junction.chat.schemas import (
    Accepted,
    ApplicationCreate,
    ApplicationCreated,
    ApplicationPublic,
    ApplicationUpdate,
    ChatPublic,
    MessageCreate,
    MessagePublic,
    MessageUpdate,
)
from junction.chat.search import MAX_QUERY_LENGTH
from junction.platform.db import DbSession, ReadSession
from junction.platform.direct_routes import DirectRoute
from junction.platform.jobs import job_token
from junction.platform.ratelimit import enforce_rate_limit, rate_limit
from junction.platform.realtime import LiveBroker, current_broker
from junction.settings import Settings

router = APIRouter(prefix="/applications", tags=["chat"])
T = TypeVar("T")

MAX_NUMBER = 2_147_483_647
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000

MAX_TOKEN_LENGTH = 200
MESSAGES_PATH = "/{application_token}/chats/{chat_number}/messages"

Token = Annotated[
    str, Path(min_length=1, max_length=MAX_TOKEN_LENGTH, description="The application token.")
]
ChatNumber = Annotated[int, Path(ge=1, le=MAX_NUMBER)]
MessageNumber = Annotated[int, Path(ge=1, le=MAX_NUMBER)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown application, chat or message"}
}


def _application_token(request: Request) -> str:
    return f"application:{request.path_params.get('application_token', '')}"


# Creates are limited per application token, so one busy tenant cannot starve the others.
CREATE_LIMIT_GROUP = "chat_create"
CreateLimit = Depends(rate_limit(CREATE_LIMIT_GROUP, identity=_application_token))


# Dependencies are coroutines: FastAPI runs a plain function in a thread, which costs
# more than the function itself.
async def _allocator(request: Request) -> NumberAllocator:
    state = request.app.state
    allocator: NumberAllocator | None = getattr(state, "chat_numbers", None)
    if allocator is None or allocator.redis is not state.redis:
        allocator = state.chat_numbers = NumberAllocator(state.redis)
    return allocator


Allocator = Annotated[NumberAllocator, Depends(_allocator)]


async def _message_batcher(request: Request) -> MessageBatcher:
    state = request.app.state
    allocator = await _allocator(request)
    broker = await current_broker(request)
    batcher: MessageBatcher | None = getattr(state, "chat_message_batcher", None)
    if batcher is None or batcher.allocator is not allocator or batcher.broker is not broker:
        batcher = state.chat_message_batcher = MessageBatcher(state.database, allocator, broker)
    return batcher


@dataclass(frozen=True)
class Page:
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def trim(self, rows: Sequence[T], request: Request, response: Response) -> Sequence[T]:
        """Drop the look-ahead row fetched to learn whether a next page exists."""
        if len(rows) > self.per_page:
            following = request.url.include_query_params(page=self.page + 1, per_page=self.per_page)
            response.headers["Link"] = f'<{following}>; rel="next"'
        return rows[: self.per_page]


async def _page(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number.")] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = DEFAULT_PER_PAGE,
) -> Page:
    return Page(page, per_page)


Paging = Annotated[Page, Depends(_page)]


def _application(application: Application) -> ApplicationPublic:
    return ApplicationPublic(
        token=application.token,
        name=application.name,
        chats_count=application.chats_count,
        created_at=application.created_at,
    )


def _chat(chat: Chat) -> ChatPublic:
    return ChatPublic(
        number=chat.number, messages_count=chat.messages_count, created_at=chat.created_at
    )


def _message(message: Message) -> MessagePublic:
    return MessagePublic(number=message.number, body=message.body, created_at=message.created_at)


def _job_location(request: Request, accepted: Accepted) -> str:
    """Where the client reads the follow-up job's state, with the token that allows it."""
    settings: Settings = request.app.state.settings
    token = job_token(settings.secret_key.get_secret_value(), int(accepted.job_id))
    return f"/api/v1/jobs/{accepted.job_id}?token={token}"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(rate_limit("write"))],
    summary="Create an application; its token is generated",
)
async def create_application(body: ApplicationCreate, session: DbSession) -> ApplicationCreated:
    application = await service.create_application(session, body.application.name)
    return ApplicationCreated(token=application.token, name=application.name)


@router.get("/{application_token}", responses=NOT_FOUND, summary="An application")
async def get_application(application_token: Token, session: ReadSession) -> ApplicationPublic:
    return _application(await service.get_application(session, application_token))


@router.patch("/{application_token}", responses=NOT_FOUND, summary="Rename an application")
async def update_application(
    application_token: Token, body: ApplicationUpdate, session: DbSession
) -> ApplicationPublic:
    application = await service.rename_application(
        session, application_token, body.application.name
    )
    return _application(application)


@router.post(
    "/{application_token}/chats",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[CreateLimit],
    responses=NOT_FOUND,
    summary="Create a chat: its number, and the job that updates the counts",
)
async def create_chat(
    application_token: Token,
    request: Request,
    response: Response,
    session: DbSession,
    allocator: Allocator,
) -> Accepted:
    accepted = await service.create_chat(session, allocator, application_token)
    response.headers["Location"] = _job_location(request, accepted)
    return accepted


@router.get("/{application_token}/chats", responses=NOT_FOUND, summary="Chats, by number")
async def list_chats(
    application_token: Token,
    paging: Paging,
    request: Request,
    response: Response,
    session: ReadSession,
) -> list[ChatPublic]:
    chats = await service.list_chats(session, application_token, paging.offset, paging.per_page + 1)
    return [_chat(chat) for chat in paging.trim(chats, request, response)]


@router.get("/{application_token}/chats/{chat_number}", responses=NOT_FOUND, summary="A chat")
async def get_chat(
    application_token: Token, chat_number: ChatNumber, session: ReadSession
) -> ChatPublic:
    return _chat(await service.get_chat(session, application_token, chat_number))


@router.post(
    MESSAGES_PATH,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[CreateLimit],
    responses=NOT_FOUND,
    summary="Create a message: readable and searchable once this answers",
)
async def create_message(
    application_token: Token,
    chat_number: ChatNumber,
    body: MessageCreate,
    request: Request,
    response: Response,
) -> Accepted:
    """The declared route. FastAPI refuses here what ``create_message_directly`` declines;
    without the direct route, this serves every create."""
    accepted = await _accept_message(request, application_token, chat_number, body)
    response.headers["Location"] = _job_location(request, accepted)
    return accepted


async def create_message_directly(request: Request, body: bytes) -> Response | None:
    """``create_message`` for a valid request, without FastAPI's handling (its CPU was
    half of a create's); None for anything else, which ``create_message`` refuses."""
    token: str = request.path_params["application_token"]
    chat_number = _valid_number(request.path_params["chat_number"])
    message = _valid_message(body)
    if chat_number is None or message is None or len(token) > MAX_TOKEN_LENGTH:
        return None
    headers = await enforce_rate_limit(request, CREATE_LIMIT_GROUP, _application_token(request))
    accepted = await _accept_message(request, token, chat_number, message)
    headers["Location"] = _job_location(request, accepted)
    return Response(
        accepted.model_dump_json(),
        status.HTTP_202_ACCEPTED,
        headers=headers,
        media_type="application/json",
    )


async def _accept_message(
    request: Request, token: str, chat_number: int, body: MessageCreate
) -> Accepted:
    batcher = await _message_batcher(request)
    return (await batcher.create(token, chat_number, body.message.body)).accepted


def _valid_number(text: str) -> int | None:
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_NUMBER else None


def _valid_message(body: bytes) -> MessageCreate | None:
    try:
        return MessageCreate.model_validate_json(body)
    except ValidationError:
        return None


@router.get(
    "/{application_token}/chats/{chat_number}/messages",
    responses=NOT_FOUND,
    summary="Messages, by number",
)
async def list_messages(
    application_token: Token,
    chat_number: ChatNumber,
    paging: Paging,
    request: Request,
    response: Response,
    session: ReadSession,
) -> list[MessagePublic]:
    messages = await service.list_messages(
        session, application_token, chat_number, paging.offset, paging.per_page + 1
    )
    return [_message(message) for message in paging.trim(messages, request, response)]


@router.get(
    "/{application_token}/chats/{chat_number}/messages/search",
    responses=NOT_FOUND,
    summary="Search one chat's messages: every word matches as a prefix, best first",
)
async def search_messages(
    application_token: Token,
    chat_number: ChatNumber,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_LENGTH)],
    paging: Paging,
    request: Request,
    response: Response,
    session: ReadSession,
) -> list[MessagePublic]:
    found = await service.search_messages(
        session, application_token, chat_number, q, paging.offset, paging.per_page + 1
    )
    return list(paging.trim(found, request, response))


@router.get(
    "/{application_token}/chats/{chat_number}/messages/{number}",
    responses=NOT_FOUND,
    summary="A message",
)
async def get_message(
    application_token: Token, chat_number: ChatNumber, number: MessageNumber, session: ReadSession
) -> MessagePublic:
    return _message(await service.get_message(session, application_token, chat_number, number))


@router.patch(
    "/{application_token}/chats/{chat_number}/messages/{number}",
    responses=NOT_FOUND,
    summary="Edit a message's body",
)
async def update_message(
    application_token: Token,
    chat_number: ChatNumber,
    number: MessageNumber,
    body: MessageUpdate,
    session: DbSession,
    broker: LiveBroker,
) -> MessagePublic:
    return await service.edit_message(
        session, broker, application_token, chat_number, number, body.message.body
    )


DIRECT_ROUTES = (DirectRoute(router.prefix + MESSAGES_PATH, "POST", create_message_directly),)
"""Answered before FastAPI's routing (``platform.direct_routes``)."""
