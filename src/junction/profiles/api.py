"""``/api/v1/users``: profiles with a file, for keys with the ``read`` / ``write`` scopes.

Create and update take JSON, or ``multipart/form-data`` with the same fields and an
optional ``file``; ``PUT /api/v1/users/{id}/file`` takes the file itself as the body
(its ``Content-Type`` declares the type), streamed to storage as it arrives. Reads are
served from the cache (``users`` namespace), which every write invalidates once it has
committed; the file's signed link is added to each response, never cached.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.auth import Principal, Scope, require_scope
from junction.platform.cache import Cache, get_or_build
from junction.platform.db import DbSession, ReadSession, await_after_commit
from junction.platform.pagination import PaginationMeta
from junction.platform.ratelimit import rate_limit
from junction.platform.realtime import LiveBroker
from junction.platform.storage import Storage, StoredFile
from junction.platform.storage.forms import (
    FILE_BODY,
    fields_or_file_body,
    read_fields,
    save_body,
    with_upload,
)
from junction.profiles import repository, service
from junction.profiles.models import User
from junction.profiles.schemas import UserCreate, UserPublic, UsersPage, UserUpdate
from junction.settings import Settings

router = APIRouter(prefix="/api/v1/users", tags=["users"])

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
FILE_ROUTE = "PUT /api/v1/users/{id}/file"
UPLOAD_PATHS = r"^/api/v1/users(/[^/]+(/file)?)?/?$"

ReadKey = Annotated[Principal, Depends(require_scope(Scope.read))]
WriteKey = Annotated[Principal, Depends(require_scope(Scope.write))]
SyncKey = Annotated[Principal, Depends(require_scope(Scope.sync))]
CreateLimit = Depends(rate_limit("user_create"))
UploadLimit = Depends(rate_limit("user_upload"))
UserId = Annotated[str, Path(max_length=64, description="The user's UUID.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such user"}}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "The email belongs to another user"},
    413: {"description": "The file is larger than the upload limit"},
    415: {"description": "The file's type is not allowed or does not match its content"},
    422: {"description": "Invalid fields"},
}


@dataclass(frozen=True)
class UserViews:
    """How every route answers with users: from the cache, with fresh signed file links,
    and after a write, invalidated once the request's unit of work has committed."""

    storage: Storage
    cache: Cache
    settings: Settings

    async def cached(self, suffix: str, build: Callable[[], Awaitable[Any]]) -> Any:
        """The cached JSON of ``suffix`` in the users namespace, built on a miss."""

        async def encoded() -> bytes:
            return json.dumps(await build()).encode()

        value, _ = await get_or_build(self.cache, service.CACHE_NAMESPACE, suffix, encoded)
        return json.loads(value)

    async def written(self, session: AsyncSession, user: User) -> dict[str, Any]:
        """The user as written; the cached users go once the request's unit of work has
        committed, before the response leaves, so a read right after it never sees the old
        user."""
        self.invalidate_after_commit(session)
        return await self.public(service.user_document(user))

    def invalidate_after_commit(self, session: AsyncSession) -> None:
        await_after_commit(session, lambda: self.cache.invalidate(service.CACHE_NAMESPACE))

    async def public(self, document: dict[str, Any]) -> dict[str, Any]:
        file = document["file"]
        if file is None:
            return document
        ttl = self.settings.file_url_ttl_seconds
        url = await self.storage.url(file["key"], ttl_seconds=ttl, filename=file["filename"])
        public_file = {key: value for key, value in file.items() if key != "key"}
        return {**document, "file": {**public_file, "url": url, "expires_in": ttl}}


async def _views(request: Request) -> UserViews:
    state = request.app.state
    return UserViews(state.storage, state.cache, state.settings)


Views = Annotated[UserViews, Depends(_views)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=WRITE_ERRORS,
    openapi_extra=fields_or_file_body(UserCreate),
    dependencies=[CreateLimit],
    summary="Create a user, with an optional file",
)
async def create_user(
    request: Request,
    _key: WriteKey,
    session: DbSession,
    views: Views,
    broker: LiveBroker,
) -> dict[str, Any]:
    fields, upload = await read_fields(request, UserCreate, file_route=FILE_ROUTE)
    assert fields is not None  # only updates may send a file alone

    async def check() -> None:
        await service.ensure_email_free(session, fields.email)

    async def write(_: None, stored: StoredFile | None) -> dict[str, Any]:
        user = await service.create_user(session, fields, stored, broker=broker)
        return await views.written(session, user)

    return await with_upload(session, views.storage, upload, check, write)


@router.get("", response_model=UsersPage, summary="List users, oldest first")
async def list_users(
    _key: ReadKey,
    session: ReadSession,
    views: Views,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = DEFAULT_PER_PAGE,
    email: Annotated[
        str | None, Query(min_length=1, max_length=320, description="Exact, any case.")
    ] = None,
) -> dict[str, Any]:
    email_key = service.email_key(email.strip()) if email else None

    async def build() -> dict[str, Any]:
        users, total = await repository.list_live(
            session, email_key=email_key, offset=(page - 1) * per_page, limit=per_page
        )
        return {
            "data": [service.user_document(user) for user in users],
            "meta": PaginationMeta.of(page, per_page, total).model_dump(),
        }

    listing = await views.cached(f"list:{page}:{per_page}:{email_key or ''}", build)
    listing["data"] = [await views.public(document) for document in listing["data"]]
    return dict(listing)


@router.get("/{user_id}", response_model=UserPublic, responses=NOT_FOUND, summary="Get one user")
async def get_user(
    user_id: UserId, _key: ReadKey, session: ReadSession, views: Views
) -> dict[str, Any]:
    async def build() -> dict[str, Any]:
        return service.user_document(await service.find_user(session, user_id))

    return await views.public(await views.cached(f"user:{user_id}", build))


@router.patch(
    "/{user_id}",
    response_model=UserPublic,
    responses={**NOT_FOUND, **WRITE_ERRORS},
    openapi_extra=fields_or_file_body(UserUpdate),
    summary="Change fields, or replace the file (multipart)",
)
async def update_user(
    request: Request,
    user_id: UserId,
    _key: WriteKey,
    session: DbSession,
    views: Views,
) -> dict[str, Any]:
    changes, upload = await read_fields(
        request, UserUpdate, file_only_ok=True, file_route=FILE_ROUTE
    )

    async def check() -> User:
        user = await service.find_user(session, user_id)
        if changes is not None:
            await service.update_user(session, user, changes)
        return user

    async def write(user: User, stored: StoredFile | None) -> dict[str, Any]:
        if upload is not None:
            await service.replace_file(session, user, stored)
        return await views.written(session, user)

    return await with_upload(session, views.storage, upload, check, write)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND,
    summary="Delete a user, its file and its Airtable record",
)
async def delete_user(
    user_id: UserId, _key: WriteKey, session: DbSession, views: Views
) -> Response:
    await service.delete_user(session, await service.find_user(session, user_id))
    views.invalidate_after_commit(session)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{user_id}/file",
    response_model=UserPublic,
    responses={**NOT_FOUND, **WRITE_ERRORS},
    dependencies=[UploadLimit],
    openapi_extra=FILE_BODY,
    summary="Upload or replace the file; the body is the file, Content-Type its type",
)
async def put_file(
    request: Request,
    user_id: UserId,
    _key: WriteKey,
    session: DbSession,
    views: Views,
    filename: Annotated[str | None, Query(max_length=255)] = None,
) -> dict[str, Any]:
    user = await service.find_user(session, user_id)
    stored = await save_body(session, views.storage, request, filename)
    await service.replace_file(session, user, stored)
    return await views.written(session, user)


@router.delete(
    "/{user_id}/file", response_model=UserPublic, responses=NOT_FOUND, summary="Remove the file"
)
async def delete_file(
    user_id: UserId,
    _key: WriteKey,
    session: DbSession,
    views: Views,
) -> dict[str, Any]:
    user = await service.find_user(session, user_id)
    await service.replace_file(session, user, None)
    return await views.written(session, user)


@router.post(
    "/{user_id}/sync",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UserPublic,
    responses=NOT_FOUND,
    summary="Write the user to Airtable again (also after attempts ran out)",
)
async def sync_user(
    user_id: UserId,
    _key: SyncKey,
    session: DbSession,
    views: Views,
) -> dict[str, Any]:
    user = await service.request_sync(session, await service.find_user(session, user_id))
    return await views.written(session, user)
