"""API keys: stored hashed, carrying scopes, sent as ``Authorization: Bearer <key>``.

A key looks like ``jk_<id>_<secret>``. The id finds the row; only a SHA-256 of the whole
key is stored. The secret has 256 bits of entropy, so a fast hash is as safe as a slow
one here and keeps authentication off the hot path's CPU budget.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import JSON, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from junction.platform.db import Base, UTCDateTime, database_of, utcnow
from junction.platform.errors import Forbidden, Unauthorized

KEY_PREFIX = "jk"


class Scope(StrEnum):
    read = "read"
    write = "write"
    sync = "sync"
    admin = "admin"


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id and what it may do."""

    key_id: str
    scopes: frozenset[str]

    @classmethod
    def of(cls, api_key: ApiKey) -> Principal:
        return cls(api_key.id, frozenset(api_key.scopes))

    def has_scope(self, scope: Scope) -> bool:
        """Whether the key holds ``scope``; the admin scope holds every scope."""
        return scope.value in self.scopes or Scope.admin.value in self.scopes


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(
    session: AsyncSession, name: str, scopes: Iterable[Scope]
) -> tuple[ApiKey, str]:
    """Store a new key; the plain key is returned once and never stored."""
    key_id = secrets.token_hex(8)
    plain = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey(
        id=key_id,
        name=name,
        key_hash=_hash(plain),
        scopes=sorted({scope.value for scope in scopes}),
    )
    session.add(api_key)
    await session.flush()
    return api_key, plain


async def find_api_key(session: AsyncSession, plain: str) -> ApiKey | None:
    prefix, _, rest = plain.partition("_")
    key_id, _, _secret = rest.partition("_")
    if prefix != KEY_PREFIX or not key_id:
        return None
    api_key = await session.scalar(select(ApiKey).where(ApiKey.id == key_id))
    if api_key is None or api_key.revoked_at is not None:
        return None
    if not hmac.compare_digest(api_key.key_hash, _hash(plain)):
        return None
    return api_key


async def key_by_id(session: AsyncSession, key_id: str) -> ApiKey | None:
    """The key with this id, unless it was revoked (a session that outlives its key ends)."""
    api_key = await session.get(ApiKey, key_id)
    return None if api_key is None or api_key.revoked_at is not None else api_key


_bearer = HTTPBearer(auto_error=False)


def require_scope(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets the request through only with a key holding ``scope``."""

    async def authorize(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise Unauthorized("Authorization: Bearer <api key> is required")
        async with database_of(request).reading() as session:
            api_key = await find_api_key(session, credentials.credentials)
        if api_key is None:
            raise Unauthorized("The API key is invalid or revoked")
        principal = Principal.of(api_key)
        if not principal.has_scope(scope):
            raise Forbidden(f"The API key lacks the '{scope.value}' scope")
        request.state.principal = principal
        return principal

    return authorize
