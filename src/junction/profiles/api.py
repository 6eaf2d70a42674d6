"""``/api/v1/users``: profiles with a file, for keys with the ``read`` / ``write`` scopes.

Create and update take JSON, or ``multipart/form-data`` with the same fields and an
optional ``file``; ``PUT /api/v1/users/{id}/file`` takes the file itself as the body
(its ``Content-Type`` declares the type), streamed to storage as it arrives. Reads are
served from the cache (``users`` namespace), which every write invalidates once it has
committed; the file's signed link is added to each response, never cached.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile
from starlette.requests import ClientDisconnect

from junction.platform.auth import Principal, Scope, require_scope
from junction.platform.cache import Cache, get_or_build
from junction.platform.db import DbSession, ReadSession, await_after_commit, await_after_rollback
from junction.platform.errors import (
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    describe_validation_error,
)
from junction.platform.ratelimit import rate_limit
from junction.platform.realtime import LiveBroker
from junction.platform.storage import Storage, StoredFile, UnsupportedUpload
from junction.profiles import repository, service
from junction.profiles.models import User
from junction.profiles.schemas import UserCreate, UserPublic, UsersPage, UserUpdate
from junction.settings import Settings

router = APIRouter(prefix="/api/v1/users", tags=["users"])
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
CHUNK_BYTES = 64 * 1024
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


def _form_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a route that reads JSON or multipart itself."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    multipart = {
        "type": "object",
        "properties": {
            **schema.get("properties", {}),
            "file": {"type": "string", "format": "binary"},
        },
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "multipart/form-data": {"schema": multipart},
            },
        }
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
    openapi_extra=_form_body(UserCreate),
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
    fields, upload = await _read_fields(request, UserCreate)
    assert fields is not None  # only updates may send a file alone

    async def check() -> None:
        await service.ensure_email_free(session, fields.email)

    async def write(_: None, stored: StoredFile | None) -> dict[str, Any]:
        user = await service.create_user(session, fields, stored, broker=broker)
        return await views.written(session, user)

    return await _with_upload(session, views.storage, upload, check, write)


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
        pagination = {
            "current_page": page,
            "per_page": per_page,
            "total_count": total,
            "total_pages": math.ceil(total / per_page),
        }
        return {
            "data": [service.user_document(user) for user in users],
            "meta": {"pagination": pagination},
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
    openapi_extra=_form_body(UserUpdate),
    summary="Change fields, or replace the file (multipart)",
)
async def update_user(
    request: Request,
    user_id: UserId,
    _key: WriteKey,
    session: DbSession,
    views: Views,
) -> dict[str, Any]:
    changes, upload = await _read_fields(request, UserUpdate, file_only_ok=True)

    async def check() -> User:
        user = await service.find_user(session, user_id)
        if changes is not None:
            await service.update_user(session, user, changes)
        return user

    async def write(user: User, stored: StoredFile | None) -> dict[str, Any]:
        if upload is not None:
            await service.replace_file(session, user, stored)
        return await views.written(session, user)

    return await _with_upload(session, views.storage, upload, check, write)


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
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
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
    declared = request.headers.get("content-type", "")
    stored = await _save(views.storage, _body_chunks(request), declared, filename)
    _delete_if_rolled_back(session, views.storage, stored)
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


async def _read_fields(
    request: Request, model: type[M], *, file_only_ok: bool = False
) -> tuple[M | None, UploadFile | None]:
    """The validated fields and the uploaded file, from a JSON or multipart body.

    The caller owns the returned upload and must close it (``_with_upload`` does).
    """
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        form = await _form(request)
        upload = form.get("file")
        try:
            if upload is not None and not isinstance(upload, UploadFile):
                raise ValidationFailed("file: must be a file part, not a text field")
            fields = {key: value for key, value in form.items() if key != "file"}
            if file_only_ok and upload is not None and not fields:
                return None, upload
            return _validated(model, fields), upload
        except BaseException:
            await form.close()
            raise
    if media_type != "application/json":
        raise UnsupportedMediaType(
            "Send the fields as application/json or multipart/form-data; "
            "a file alone goes to PUT /api/v1/users/{id}/file"
        )
    try:
        payload = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("The body must be a JSON object") from None
    except ClientDisconnect:
        raise PayloadTooLarge() from None
    return _validated(model, payload), None


async def _form(request: Request) -> FormData:
    try:
        return await request.form(max_files=1, max_fields=20, max_part_size=64 * 1024)
    except ClientDisconnect:
        raise PayloadTooLarge() from None


def _validated(model: type[M], data: Any) -> M:
    if not isinstance(data, dict) or not data:
        raise ValidationFailed("The body must be a JSON object with the user's fields")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(*map(describe_validation_error, exc.errors())) from None


async def _with_upload(
    session: AsyncSession,
    storage: Storage,
    upload: UploadFile | None,
    check: Callable[[], Awaitable[T]],
    write: Callable[[T, StoredFile | None], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Check, store the upload, then write; if the request's unit of work does not commit
    (the write fails, or the commit itself), the stored file is removed again.

    The check runs before the file is stored, so a request refused for its fields (an
    unknown user, a taken email) never leaves an object behind.
    """
    try:
        checked = await check()
        if upload is None:
            return await write(checked, None)
        stored = await _save(storage, _upload_chunks(upload), upload.content_type, upload.filename)
    finally:
        if upload is not None:
            await upload.close()
    _delete_if_rolled_back(session, storage, stored)
    return await write(checked, stored)


def _delete_if_rolled_back(session: AsyncSession, storage: Storage, stored: StoredFile) -> None:
    await_after_rollback(session, lambda: storage.delete(stored.key))


async def _save(
    storage: Storage, chunks: AsyncIterator[bytes], declared: str | None, filename: str | None
) -> StoredFile:
    if not declared:
        raise UnsupportedUpload("Declare the file's type in its Content-Type")
    return await storage.save(chunks, declared_type=declared, filename=filename)


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK_BYTES):
        yield chunk


async def _body_chunks(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise PayloadTooLarge() from None
