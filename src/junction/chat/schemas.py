"""Request and response bodies of seed 001, field for field.

Requests wrap their fields the Rails way (``{"application": {"name": ...}}``); responses
carry numbers and tokens only, never a row id. Times are UTC with milliseconds and ``Z``,
as the seed shows them (``2025-10-27T12:00:00.000Z``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from junction.platform.wire import WireTime

MAX_NAME_LENGTH = 200
MAX_BODY_LENGTH = 10_000


Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_LENGTH)
]
Body = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_BODY_LENGTH)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class ApplicationFields(_Strict):
    name: Name


class ApplicationCreate(_Strict):
    application: ApplicationFields


class ApplicationUpdate(_Strict):
    application: ApplicationFields


class MessageFields(_Strict):
    body: Body


class MessageCreate(_Strict):
    message: MessageFields


class MessageUpdate(_Strict):
    message: MessageFields


class ApplicationCreated(BaseModel):
    token: str
    name: str


class ApplicationPublic(BaseModel):
    token: str
    name: str
    chats_count: int
    created_at: WireTime


class Accepted(BaseModel):
    """A create was committed; ``job_id`` is its follow-up work (counts)."""

    job_id: str = Field(description="Read its state at /api/v1/jobs/{job_id}.")
    number: int


class ChatPublic(BaseModel):
    number: int
    messages_count: int
    created_at: WireTime


class MessagePublic(BaseModel):
    number: int
    body: str
    created_at: WireTime
