"""``GET /api/v1/files/{key}``: a local file, to whoever holds a signed, unexpired link.

No API key is asked for: the signature is the capability. A link that is unsigned,
tampered with or expired answers 403, a file that is gone 404. The file goes out as an
attachment with ``nosniff``, so a browser never renders an upload as a page, and may be
cached privately until the link expires. With the S3 backend, links point at the bucket
and this route finds nothing.
"""

from __future__ import annotations

import os
import stat
import time
from typing import Annotated

import anyio
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse

from junction.platform.errors import Forbidden, NotFound
from junction.platform.storage.files import content_disposition, content_type_of, display_filename
from junction.platform.storage.local import DOWNLOAD_PREFIX, LocalStorage, link_is_genuine
from junction.settings import Settings, StorageBackend

router = APIRouter(prefix=DOWNLOAD_PREFIX, tags=["files"])


@router.get(
    "/{key:path}",
    summary="Download a stored file through a signed link",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file."},
        403: {"description": "The link is unsigned, tampered with or expired."},
        404: {"description": "The file is gone."},
    },
)
async def download_file(
    request: Request,
    key: str,
    expires: Annotated[int | None, Query(description="Unix time the link expires at.")] = None,
    signature: Annotated[str | None, Query(description="HMAC-SHA256 of the link.")] = None,
    filename: Annotated[str | None, Query(description="Name to save the file as.")] = None,
) -> FileResponse:
    settings: Settings = request.app.state.settings
    remaining = _seconds_left(settings, key, expires, signature, filename)
    path, found = await _local_file(settings, key)
    return FileResponse(
        path,
        media_type=content_type_of(key),
        stat_result=found,
        headers={
            "Content-Disposition": content_disposition(display_filename(filename, key)),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": f"private, max-age={remaining}",
        },
    )


def _seconds_left(
    settings: Settings, key: str, expires: int | None, signature: str | None, filename: str | None
) -> int:
    """How long the link still holds; raises ``Forbidden`` for a false or expired one."""
    if (
        expires is None
        or signature is None
        or not link_is_genuine(settings, key, expires, filename, signature)
    ):
        raise Forbidden("The download link is invalid")
    remaining = expires - int(time.time())
    if remaining <= 0:
        raise Forbidden("The download link has expired")
    return remaining


async def _local_file(settings: Settings, key: str) -> tuple[anyio.Path, os.stat_result]:
    if settings.storage_backend != StorageBackend.local:
        raise NotFound("The file does not exist")
    path = LocalStorage(settings).path_of(key)
    try:
        found = await path.stat()
    except FileNotFoundError:
        raise NotFound("The file does not exist") from None
    if not stat.S_ISREG(found.st_mode):
        raise NotFound("The file does not exist")
    return path, found


def install_storage(app: FastAPI) -> None:
    """Adds the download route once, however often it is called."""
    if getattr(app.state, "storage_route_installed", False):
        return
    app.include_router(router)
    app.state.storage_route_installed = True
