"""Request bodies that carry fields and, maybe, one file, for any domain's routes.

A write takes its fields as JSON, or as ``multipart/form-data`` with the same fields and an
optional ``file`` part; a file alone may also come as the body itself (its
``Content-Type`` declares the type). The file streams to storage as it arrives and belongs
to the request's unit of work: if that does not commit (the write fails, or the commit
itself), the stored file is deleted again, so a refused request leaves no object behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile
from starlette.requests import ClientDisconnect, Request

from junction.platform.db import await_after_rollback
from junction.platform.errors import (
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    describe_validation_error,
)
from junction.platform.storage.files import Storage, StoredFile
from junction.platform.storage.uploads import UnsupportedUpload

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
R = TypeVar("R")

CHUNK_BYTES = 64 * 1024
MAX_FORM_FIELDS = 20
MAX_FIELD_BYTES = 64 * 1024


def fields_or_file_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that reads JSON or multipart itself."""
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


FILE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    }
}
"""The OpenAPI ``requestBody`` of a route whose body is the file itself."""


async def read_fields(
    request: Request, model: type[M], *, file_only_ok: bool = False, file_route: str = ""
) -> tuple[M | None, UploadFile | None]:
    """The validated fields and the uploaded file, from a JSON or multipart body; fields
    are None only when ``file_only_ok`` and the form holds a file alone.

    The caller owns the returned upload and must close it (``with_upload`` does).
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
            return validated(model, fields), upload
        except BaseException:
            await form.close()
            raise
    if media_type != "application/json":
        alone = f"; a file alone goes to {file_route}" if file_route else ""
        raise UnsupportedMediaType(
            f"Send the fields as application/json or multipart/form-data{alone}"
        )
    try:
        payload = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("The body must be a JSON object") from None
    except RecursionError:  # Python's parser gives up on deep nesting this way
        raise ValidationFailed("The body is nested too deeply") from None
    except ClientDisconnect:
        raise PayloadTooLarge() from None
    return validated(model, payload), None


async def _form(request: Request) -> FormData:
    try:
        return await request.form(
            max_files=1, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FIELD_BYTES
        )
    except ClientDisconnect:
        raise PayloadTooLarge() from None


def validated(model: type[M], data: Any) -> M:
    """``data`` as ``model``, or ``ValidationFailed`` naming each problem."""
    if not isinstance(data, dict) or not data:
        raise ValidationFailed("The body must be a JSON object with the fields")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(*map(describe_validation_error, exc.errors())) from None


async def with_upload(
    session: AsyncSession,
    storage: Storage,
    upload: UploadFile | None,
    check: Callable[[], Awaitable[T]],
    write: Callable[[T, StoredFile | None], Awaitable[R]],
) -> R:
    """Check, store the upload, then write, all in the session's unit of work.

    The check runs before the file is stored, so a request refused for its fields (an
    unknown record, a taken email) never stores an object.
    """
    try:
        checked = await check()
        if upload is None:
            return await write(checked, None)
        stored = await save(
            session, storage, _upload_chunks(upload), upload.content_type, upload.filename
        )
    finally:
        if upload is not None:
            await upload.close()
    return await write(checked, stored)


async def save_body(
    session: AsyncSession, storage: Storage, request: Request, filename: str | None
) -> StoredFile:
    """The request's body stored as a file of the type its ``Content-Type`` declares."""
    declared = request.headers.get("content-type", "")
    return await save(session, storage, _body_chunks(request), declared, filename)


async def save(
    session: AsyncSession,
    storage: Storage,
    chunks: AsyncIterator[bytes],
    declared: str | None,
    filename: str | None,
) -> StoredFile:
    """Store ``chunks``; the file is deleted again if the session's unit of work rolls back."""
    if not declared:
        raise UnsupportedUpload("Declare the file's type in its Content-Type")
    stored = await storage.save(chunks, declared_type=declared, filename=filename)
    await_after_rollback(session, lambda: storage.delete(stored.key))
    return stored


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
