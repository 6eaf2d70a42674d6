"""The local storage backend: files in a folder, served through signed links.

A file is written to a hidden ``.partial`` file beside its final place, flushed and
fsynced, then renamed over, and the folder is fsynced too: a file is either whole under
its key or absent, and an acknowledged upload survives a crash. On any failure, the
partial file is removed. Disk work runs in worker threads (``anyio.Path``,
``anyio.open_file``) so the event loop keeps serving.

Download links are ``{public_base_url}/api/v1/files/{key}?expires=…&signature=…``, the
signature an HMAC-SHA256 with ``secret_key`` over the key, the expiry and the file name
when one is given. The link is the capability: whoever holds it may fetch the file until
it expires, with no API key (Airtable fetches attachments from it).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from urllib.parse import quote, urlencode

import anyio
import anyio.to_thread

from junction.platform.storage.files import checked_key, display_filename
from junction.platform.storage.uploads import CheckedUpload, ReceivingStorage
from junction.settings import Settings

DOWNLOAD_PREFIX = "/api/v1/files"


class LocalStorage(ReceivingStorage):
    backend = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = anyio.Path(settings.storage_path)

    def path_of(self, key: str) -> anyio.Path:
        return self.root / checked_key(key)

    async def delete(self, key: str) -> None:
        await self.path_of(key).unlink(missing_ok=True)

    async def exists(self, key: str) -> bool:
        return await self.path_of(key).is_file()

    async def url(
        self, key: str, *, ttl_seconds: int | None = None, filename: str | None = None
    ) -> str:
        checked_key(key)
        ttl = self.settings.file_url_ttl_seconds if ttl_seconds is None else ttl_seconds
        expires = int(time.time()) + ttl
        shown = None if filename is None else display_filename(filename, key)
        query: dict[str, str | int] = {
            "expires": expires,
            "signature": link_signature(self.settings, key, expires, shown),
        }
        if shown is not None:
            query["filename"] = shown
        address = f"{public_base_url(self.settings)}{DOWNLOAD_PREFIX}/{key}"
        return f"{address}?{urlencode(query, quote_via=quote)}"

    async def close(self) -> None:
        """Nothing is held open between calls."""

    async def _write(self, key: str, upload: CheckedUpload) -> None:
        final = self.root / key
        partial = final.with_name(f".{final.name}.partial")
        await final.parent.mkdir(parents=True, exist_ok=True)
        try:
            async with await anyio.open_file(partial, "xb") as file:
                while chunk := await upload.read():
                    await file.write(chunk)
                await file.flush()
                await anyio.to_thread.run_sync(os.fsync, file.wrapped.fileno())
            await partial.rename(final)
        except BaseException:
            # Shielded: a cancelled upload must still remove its partial file.
            with anyio.CancelScope(shield=True):
                await partial.unlink(missing_ok=True)
            raise
        await anyio.to_thread.run_sync(_sync_folder, str(final.parent))


def _sync_folder(path: str) -> None:
    """Makes the rename itself durable: it lives in the folder's entry list."""
    if os.name != "posix":
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def public_base_url(settings: Settings) -> str:
    base = settings.public_base_url or f"http://{settings.host}:{settings.port}"
    return base.rstrip("/")


def link_signature(settings: Settings, key: str, expires: int, filename: str | None) -> str:
    message = f"file:{key}:{expires}" + ("" if filename is None else f":{filename}")
    secret = settings.secret_key.get_secret_value().encode()
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def link_is_genuine(
    settings: Settings, key: str, expires: int, filename: str | None, signature: str
) -> bool:
    expected = link_signature(settings, key, expires, filename)
    return hmac.compare_digest(expected.encode(), signature.encode())
