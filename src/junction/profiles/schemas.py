"""Request and response bodies of ``/api/v1/users`` and the live ``user_updates`` messages.

Requests may wrap their fields the Rails way (``{"user": {...}}``, multipart
``user[first_name]``) or send them flat. Names are trimmed, inner runs of whitespace
collapse to one space and control characters are refused; an email must be deliverable in
form (``email-validator``, no DNS lookup); a date of birth lies in the past.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from junction.platform.pagination import PaginationMeta
from junction.platform.wire import WireTime

MAX_NAME_LENGTH = 100
EARLIEST_BIRTH_DATE = date(1900, 1, 1)
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
FIELDS = ("first_name", "last_name", "email", "date_of_birth")


def clean_name(value: str) -> str:
    if _CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters")
    cleaned = " ".join(value.split())
    if not cleaned:
        raise ValueError("must not be blank")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValueError(f"must be at most {MAX_NAME_LENGTH} characters")
    return cleaned


def clean_email(value: str) -> str:
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return checked.normalized


def past_date(value: date) -> date:
    if value >= datetime.now(UTC).date():
        raise ValueError("must be in the past")
    if value < EARLIEST_BIRTH_DATE:
        raise ValueError(f"must not be before {EARLIEST_BIRTH_DATE.isoformat()}")
    return value


Name = Annotated[str, AfterValidator(clean_name)]
Email = Annotated[str, Field(max_length=320), AfterValidator(clean_email)]
BirthDate = Annotated[date, AfterValidator(past_date)]


def unwrap_user(data: Any) -> Any:
    """``{"user": {...}}`` and ``user[first_name]`` become plain field names."""
    if not isinstance(data, Mapping):
        return data
    if isinstance(data.get("user"), Mapping):
        return data["user"]
    return {
        (key[5:-1] if key.startswith("user[") and key.endswith("]") else key): value
        for key, value in data.items()
    }


class _UserFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        return unwrap_user(data)


class UserCreate(_UserFields):
    first_name: Name = Field(examples=["Ada"])
    last_name: Name = Field(examples=["Lovelace"])
    email: Email = Field(examples=["ada@example.com"])
    date_of_birth: BirthDate = Field(examples=["1815-12-10"])


class UserUpdate(_UserFields):
    first_name: Name | None = None
    last_name: Name | None = None
    email: Email | None = None
    date_of_birth: BirthDate | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> UserUpdate:
        if not self.model_fields_set:
            raise ValueError(f"send at least one of {', '.join(FIELDS)}")
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class FilePublic(BaseModel):
    filename: str
    content_type: str
    size: int
    url: str = Field(description="A signed download link; it expires (see `expires_in`).")
    expires_in: int = Field(description="Seconds the link stays valid.")


class SyncPublic(BaseModel):
    status: str = Field(examples=["synced"])
    attempts: int
    last_error: str | None
    airtable_record_id: str | None


class UserPublic(BaseModel):
    id: str = Field(description="The user's UUID.")
    first_name: str
    last_name: str
    email: str
    date_of_birth: date
    file: FilePublic | None
    created_at: WireTime
    updated_at: WireTime
    synced_at: WireTime | None
    sync: SyncPublic


class UsersPage(BaseModel):
    data: list[UserPublic]
    meta: PaginationMeta
