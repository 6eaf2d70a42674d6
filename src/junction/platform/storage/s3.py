"""The S3 storage backend, for AWS S3 and S3-compatible stores (MinIO, Ceph, moto).

Each ``S3Storage`` opens one aiobotocore client on first use and closes it in
``close()``. An upload that fits in one part (8 MiB) is one ``PutObject``; a larger one is
a multipart upload fed part by part from the stream, so at most one part is held in
memory, and it is aborted on any failure, a refused upload included: no object and no
incomplete multipart upload is left behind. Requests retry in botocore's ``standard``
mode (exponential backoff with jitter) within connect and read timeouts.

Download links are presigned ``GetObject`` URLs (signature v4), path-style when
``s3_path_style`` says so or, by default, when an endpoint URL is set. Checksums are sent
only where S3 requires them: many S3-compatible stores refuse the ones newer botocore
adds by default.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import anyio
import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from junction.platform.storage.files import (
    checked_key,
    content_disposition,
    display_filename,
)
from junction.platform.storage.uploads import CheckedUpload, ReceivingStorage
from junction.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

log = structlog.get_logger(__name__)

PART_BYTES = 8 * 1024 * 1024
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 60.0
MAX_ATTEMPTS = 4
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class S3Storage(ReceivingStorage):
    failures = (ClientError, BotoCoreError, OSError)
    backend = "s3"

    def __init__(self, settings: Settings) -> None:
        if not settings.s3_bucket:
            raise ValueError("JUNCTION_S3_BUCKET must be set for the s3 storage backend")
        self.settings = settings
        self.bucket = settings.s3_bucket
        self._client: S3Client | None = None
        self._opening = asyncio.Lock()
        self._resources = AsyncExitStack()

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        await s3.delete_object(Bucket=self.bucket, Key=checked_key(key))

    async def exists(self, key: str) -> bool:
        s3 = await self._s3()
        try:
            await s3.head_object(Bucket=self.bucket, Key=checked_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise
        return True

    async def url(
        self, key: str, *, ttl_seconds: int | None = None, filename: str | None = None
    ) -> str:
        s3 = await self._s3()
        params = {"Bucket": self.bucket, "Key": checked_key(key)}
        if filename is not None:
            shown = display_filename(filename, key)
            params["ResponseContentDisposition"] = content_disposition(shown)
        ttl = self.settings.file_url_ttl_seconds if ttl_seconds is None else ttl_seconds
        return await s3.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl)

    async def close(self) -> None:
        await self._resources.aclose()
        self._client = None

    async def _s3(self) -> S3Client:
        async with self._opening:
            if self._client is None:
                self._client = await self._resources.enter_async_context(
                    get_session().create_client(
                        "s3",
                        region_name=self.settings.s3_region,
                        endpoint_url=self.settings.s3_endpoint_url,
                        aws_access_key_id=_secret(self.settings.aws_access_key_id),
                        aws_secret_access_key=_secret(self.settings.aws_secret_access_key),
                        config=client_config(self.settings),
                    )
                )
            return self._client

    async def _write(self, key: str, upload: CheckedUpload) -> None:
        s3 = await self._s3()
        buffer = bytearray()
        if await _fill(upload, buffer):
            await s3.put_object(
                Bucket=self.bucket, Key=key, Body=bytes(buffer), ContentType=upload.content_type
            )
            return
        created = await s3.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=upload.content_type
        )
        upload_id = created["UploadId"]
        try:
            parts = await self._upload_parts(s3, key, upload_id, upload, buffer)
            await s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # Shielded: a cancelled upload must still release the parts it sent.
            with anyio.CancelScope(shield=True):
                await self._abort(s3, key, upload_id)
            raise

    async def _upload_parts(
        self, s3: S3Client, key: str, upload_id: str, upload: CheckedUpload, buffer: bytearray
    ) -> list[CompletedPartTypeDef]:
        parts: list[CompletedPartTypeDef] = []
        ended = False
        while not ended or buffer:
            if not ended:
                ended = await _fill(upload, buffer)
            if not buffer:
                break
            number = len(parts) + 1
            sent = await s3.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=bytes(buffer[:PART_BYTES]),
            )
            del buffer[:PART_BYTES]
            parts.append({"ETag": sent["ETag"], "PartNumber": number})
        return parts

    async def _abort(self, s3: S3Client, key: str, upload_id: str) -> None:
        try:
            await s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
            # The failure that caused the abort matters more; a bucket lifecycle rule
            # (AbortIncompleteMultipartUpload) removes what is left.
            log.warning("multipart upload not aborted", key=key, error=str(exc))


async def _fill(upload: CheckedUpload, buffer: bytearray) -> bool:
    """Reads until ``buffer`` holds a whole part; True when the upload ended first."""
    while len(buffer) < PART_BYTES:
        chunk = await upload.read()
        if not chunk:
            return True
        buffer += chunk
    return False


def uses_path_style(settings: Settings) -> bool:
    if settings.s3_path_style is not None:
        return settings.s3_path_style
    return settings.s3_endpoint_url is not None


def client_config(settings: Settings) -> AioConfig:
    return AioConfig(
        signature_version="s3v4",
        s3={"addressing_style": "path" if uses_path_style(settings) else "virtual"},
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def _secret(value: SecretStr | None) -> str | None:
    """None lets botocore look through its usual chain (environment, profile, role)."""
    return None if value is None else value.get_secret_value()
