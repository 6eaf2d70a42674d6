"""An upload checked as it streams: declared type, sniffed type, size and digest.

Uploads are hostile until checked. The declared media type must be on the allow-list,
and the first bytes must show that type before anything is written: ``filetype`` reads
the magic numbers in at most ``SNIFF_BYTES``, so that much is buffered, and no more.
A declared type ``filetype`` cannot recognise (``text/plain``, ``text/csv``) is accepted
only for content that is no recognisable binary format. Bytes are counted and hashed as
they pass; one byte over ``upload_max_bytes`` stops the upload. The backends only write
what ``CheckedUpload.read`` hands them and clean up when it raises.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import ClassVar

import filetype  # type: ignore[import-untyped]
import structlog
from prometheus_client import Counter

from junction.platform.errors import (
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from junction.platform.storage.files import StoredFile, display_filename, new_key
from junction.settings import Settings

SNIFF_BYTES = 8192

log = structlog.get_logger(__name__)

_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    # An animated PNG is a valid PNG, and filetype names it apart.
    "image/apng": "image/png",
    "application/x-pdf": "application/pdf",
}

UPLOADS = Counter(
    "junction_storage_uploads_total",
    "Uploads by backend and outcome: stored, too_large, unsupported, empty or error.",
    ["backend", "outcome"],
)
STORED_BYTES = Counter(
    "junction_storage_stored_bytes_total",
    "Bytes of the uploads stored, by backend.",
    ["backend"],
)


class UploadTooLarge(PayloadTooLarge):
    default_message = "The file is too large"


class UnsupportedUpload(UnsupportedMediaType):
    default_message = "This type of file is not accepted"


class EmptyUpload(ValidationFailed):
    default_message = "The file is empty"


class StorageUnavailable(ServiceUnavailable):
    """The store refused or failed the write (a folder not writable, S3 answering 5xx after
    its retries): the request is refused, nothing is kept, and the client may retry."""

    default_message = "File storage is unavailable; try again shortly"
    RETRY_AFTER_SECONDS = 5

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": str(self.RETRY_AFTER_SECONDS)})


def media_type(value: str) -> str:
    """``Image/JPG; charset=binary`` -> ``image/jpeg``."""
    bare = value.split(";", 1)[0].strip().lower()
    return _ALIASES.get(bare, bare)


def sniffed_type(head: bytes) -> str | None:
    kind = filetype.guess(head)
    return None if kind is None else media_type(str(kind.mime))


RECOGNISABLE_TYPES = frozenset(media_type(str(kind.mime)) for kind in filetype.types)


def accepted_type(declared_type: str, allowed_types: Iterable[str]) -> str:
    content_type = media_type(declared_type)
    allowed = sorted({media_type(value) for value in allowed_types})
    if content_type not in allowed:
        raise UnsupportedUpload(
            f"Files of type {content_type or 'none'} are not accepted; "
            f"send one of {', '.join(allowed)}"
        )
    return content_type


def check_content(declared_type: str, head: bytes) -> None:
    found = sniffed_type(head)
    if found == declared_type or (found is None and declared_type not in RECOGNISABLE_TYPES):
        return
    shown = found or "not recognisable as that type"
    raise UnsupportedUpload(f"The file was declared {declared_type}, but its content is {shown}")


class CheckedUpload:
    """The bytes of one upload, handed out only once they passed the checks."""

    def __init__(self, chunks: AsyncIterable[bytes], content_type: str, max_bytes: int) -> None:
        self.content_type = content_type
        self.max_bytes = max_bytes
        self.size = 0
        self._chunks: AsyncIterator[bytes] = aiter(chunks)
        self._digest = hashlib.sha256()
        self._head = b""

    @classmethod
    async def start(
        cls, chunks: AsyncIterable[bytes], declared_type: str, settings: Settings
    ) -> CheckedUpload:
        """Reads the first bytes and checks type and emptiness; nothing is stored yet."""
        content_type = accepted_type(declared_type, settings.upload_allowed_types)
        upload = cls(chunks, content_type, settings.upload_max_bytes)
        await upload._sniff()
        return upload

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    async def read(self) -> bytes:
        """The next bytes, ``b""`` at the end: first the sniffed head, then each chunk."""
        if self._head:
            head, self._head = self._head, b""
            return head
        while (chunk := await self._next()) is not None:
            if chunk:
                return chunk
        return b""

    async def _sniff(self) -> None:
        head = bytearray()
        while len(head) < SNIFF_BYTES and (chunk := await self._next()) is not None:
            head += chunk
        if not head:
            raise EmptyUpload()
        check_content(self.content_type, bytes(head[:SNIFF_BYTES]))
        self._head = bytes(head)

    async def _next(self) -> bytes | None:
        chunk = await anext(self._chunks, None)
        if chunk is None:
            return None
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise UploadTooLarge(f"The file is larger than the limit of {self.max_bytes} bytes")
        self._digest.update(chunk)
        return chunk


class ReceivingStorage(ABC):
    """``save`` for every backend: the checks, the new key and the metrics. A backend only
    writes the checked bytes under the key (``_write``)."""

    backend: ClassVar[str]
    failures: ClassVar[tuple[type[Exception], ...]] = (OSError,)
    """What the backend raises when the store itself fails, as opposed to the upload."""
    settings: Settings

    async def save(
        self, chunks: AsyncIterable[bytes], *, declared_type: str, filename: str | None = None
    ) -> StoredFile:
        try:
            upload = await CheckedUpload.start(chunks, declared_type, self.settings)
            key = new_key(upload.content_type)
            await self._write(key, upload)
        except self.failures as exc:
            UPLOADS.labels(self.backend, "error").inc()
            log.error("storing an upload failed", backend=self.backend, error=str(exc))
            raise StorageUnavailable() from exc
        except Exception as exc:
            UPLOADS.labels(self.backend, _outcome(exc)).inc()
            raise
        UPLOADS.labels(self.backend, "stored").inc()
        STORED_BYTES.labels(self.backend).inc(upload.size)
        return StoredFile(
            key=key,
            size=upload.size,
            content_type=upload.content_type,
            sha256=upload.sha256,
            filename=display_filename(filename, key),
        )

    @abstractmethod
    async def _write(self, key: str, upload: CheckedUpload) -> None:
        """Store the upload's bytes under ``key``; leave nothing behind if it fails."""


def _outcome(exc: Exception) -> str:
    if isinstance(exc, UploadTooLarge):
        return "too_large"
    if isinstance(exc, UnsupportedUpload):
        return "unsupported"
    if isinstance(exc, EmptyUpload):
        return "empty"
    return "error"
