"""What every storage backend shares: the stored file's record, its key and its names.

Keys are generated here and never taken from a client: ``uploads/YYYY/MM/DD/<uuid4
hex>.<ext>``. Every backend checks a key against that exact pattern before it touches
anything, and the pattern admits no ``..``, no leading ``/`` and no backslash, so a key
can never reach outside the storage folder or bucket prefix. The extension comes from the
verified media type, which is how a backend that keeps no metadata (the local folder)
knows a file's type again when it serves it.

``content_disposition`` is written here rather than taken from Starlette's
``FileResponse``: Starlette sends either ``filename`` or ``filename*``, while RFC 6266
asks for an ASCII ``filename`` with ``filename*`` beside it, and S3 links need the same
header value without a response object.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

import filetype  # type: ignore[import-untyped]

from junction.platform.errors import NotFound

MAX_FILENAME_CHARS = 255
_KEY = re.compile(r"uploads/\d{4}/\d{2}/\d{2}/[0-9a-f]{32}(?:\.[a-z0-9]{1,10})?")
_EXTENSION = re.compile(r"[a-z0-9]{1,10}")
_PATH_SEPARATORS = re.compile(r"[/\\]")
_UNSAFE_IN_QUOTES = re.compile(r'["\\%]')


@dataclass(frozen=True)
class StoredFile:
    key: str
    """Generated, e.g. ``uploads/2026/11/23/<uuid4 hex>.png``; never from the client."""
    size: int
    content_type: str
    """The verified media type."""
    sha256: str
    """Hex digest of the content."""
    filename: str
    """The client's file name made safe for display, or a generated one."""


class Storage(Protocol):
    async def save(
        self, chunks: AsyncIterable[bytes], *, declared_type: str, filename: str | None = None
    ) -> StoredFile: ...

    async def delete(self, key: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def url(
        self, key: str, *, ttl_seconds: int | None = None, filename: str | None = None
    ) -> str: ...

    async def close(self) -> None: ...


class InvalidFileKey(NotFound):
    default_message = "No stored file has this key"


def new_key(content_type: str, now: datetime | None = None) -> str:
    day = (now or datetime.now(UTC)).strftime("%Y/%m/%d")
    return f"uploads/{day}/{uuid.uuid4().hex}{extension_for(content_type)}"


def checked_key(key: str) -> str:
    """The key itself when it has the generated shape; raises ``InvalidFileKey`` otherwise."""
    if not _KEY.fullmatch(key):
        raise InvalidFileKey()
    return key


def extension_for(content_type: str) -> str:
    kind = filetype.get_type(mime=content_type)
    found = str(kind.extension) if kind else mimetypes.guess_extension(content_type) or ""
    extension = found.lstrip(".").lower()
    return f".{extension}" if _EXTENSION.fullmatch(extension) else ""


def content_type_of(key: str) -> str:
    """The media type a key's extension stands for (the inverse of ``extension_for``)."""
    extension = checked_key(key).rpartition("/")[2].partition(".")[2]
    kind = filetype.get_type(ext=extension) if extension else None
    if kind is not None:
        return str(kind.mime)
    return mimetypes.guess_type(f"file.{extension}")[0] or "application/octet-stream"


def display_filename(name: str | None, key: str) -> str:
    """The client's name without path parts or control characters, at most 255
    characters with its extension kept; the key's own name when nothing usable is left."""
    base = _PATH_SEPARATORS.split(unicodedata.normalize("NFC", name or ""))[-1]
    base = "".join(c for c in base if not unicodedata.category(c).startswith("C")).strip()
    if base in ("", ".", ".."):
        return key.rpartition("/")[2]
    if len(base) <= MAX_FILENAME_CHARS:
        return base
    stem, dot, extension = base.rpartition(".")
    if dot and stem and len(extension) <= 16:
        return f"{stem[: MAX_FILENAME_CHARS - len(extension) - 1]}.{extension}"
    return base[:MAX_FILENAME_CHARS]


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII ``filename`` and, when that lost anything, the exact
    name as ``filename*`` (RFC 6266, RFC 8187)."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    fallback = _UNSAFE_IN_QUOTES.sub("_", ascii_name).strip()
    if not fallback or fallback.startswith("."):
        fallback = f"download{fallback}"
    header = f'attachment; filename="{fallback}"'
    if fallback != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header
