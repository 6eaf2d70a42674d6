"""The S3 backend against moto's server over real HTTP, with presigned links fetched by httpx."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

from junction.platform.storage import (
    S3Storage,
    UnsupportedUpload,
    UploadTooLarge,
    open_storage,
)
from junction.platform.storage.s3 import PART_BYTES
from junction.settings import Settings
from tests.support.files import PDF, chunks_of, png_bytes
from tests.support.live import free_port
from tests.support.storage import configured

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

MiB = 1024 * 1024


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_settings(settings: Settings, moto_endpoint: str) -> Settings:
    return configured(
        settings,
        storage_backend="s3",
        s3_endpoint_url=moto_endpoint,
        s3_bucket=f"junction-{uuid.uuid4().hex[:12]}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
async def bucket(s3_settings: Settings) -> AsyncIterator[S3Client]:
    """A fresh bucket, and a client of its own to look inside it."""
    async with get_session().create_client(
        "s3",
        region_name=s3_settings.s3_region,
        endpoint_url=s3_settings.s3_endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        await client.create_bucket(Bucket=str(s3_settings.s3_bucket))
        yield client


@pytest.fixture
async def s3_storage(s3_settings: Settings, bucket: S3Client) -> AsyncIterator[S3Storage]:
    storage = open_storage(s3_settings)
    assert isinstance(storage, S3Storage)
    yield storage
    await storage.close()


async def objects_in(client: S3Client, bucket: str) -> list[str]:
    listed = await client.list_objects_v2(Bucket=bucket)
    return [entry["Key"] for entry in listed.get("Contents", [])]


async def pending_uploads(client: S3Client, bucket: str) -> list[str]:
    listed = await client.list_multipart_uploads(Bucket=bucket)
    return [entry["Key"] for entry in listed.get("Uploads", [])]


async def download(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(url)


async def test_a_small_file_is_one_object_read_back_through_a_presigned_link(
    s3_storage: S3Storage, s3_settings: Settings, bucket: S3Client
) -> None:
    data = png_bytes(30_000)
    stored = await s3_storage.save(
        chunks_of(data, 4096), declared_type="image/png", filename="../holiday.png"
    )
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert stored.filename == "holiday.png"
    head = await bucket.head_object(Bucket=s3_storage.bucket, Key=stored.key)
    assert (head["ContentType"], head["ContentLength"]) == ("image/png", len(data))
    assert "-" not in head["ETag"]  # one PutObject, no multipart

    url = await s3_storage.url(stored.key, ttl_seconds=900, filename=stored.filename)
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}" == s3_settings.s3_endpoint_url
    assert parts.path == f"/{s3_storage.bucket}/{stored.key}"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "900"
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs(signed_at.timestamp() - time.time()) < 60
    assert query["response-content-disposition"] == 'attachment; filename="holiday.png"'

    response = await download(url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-disposition"] == 'attachment; filename="holiday.png"'


async def test_a_large_file_goes_up_in_8_mib_parts(s3_settings: Settings, bucket: S3Client) -> None:
    storage = S3Storage(configured(s3_settings, upload_max_bytes=32 * MiB))
    data = png_bytes(2 * PART_BYTES + 12_345)
    try:
        stored = await storage.save(chunks_of(data, 256 * 1024), declared_type="image/png")
        head = await bucket.head_object(Bucket=storage.bucket, Key=stored.key)
        assert head["ETag"].strip('"').endswith("-3")  # three parts: 8 MiB, 8 MiB, the rest
        assert head["ContentLength"] == len(data)
        response = await download(await storage.url(stored.key))
    finally:
        await storage.close()
    assert hashlib.sha256(response.content).hexdigest() == stored.sha256
    assert await pending_uploads(bucket, storage.bucket) == []


async def test_an_upload_over_the_limit_is_aborted_and_leaves_nothing(
    s3_settings: Settings, bucket: S3Client
) -> None:
    storage = S3Storage(configured(s3_settings, upload_max_bytes=9 * MiB))
    pending_seen: list[str] = []

    async def watched() -> AsyncIterator[bytes]:
        async for chunk in chunks_of(png_bytes(12 * MiB), MiB):
            if not pending_seen:
                pending_seen.extend(await pending_uploads(bucket, storage.bucket))
            yield chunk

    try:
        with pytest.raises(UploadTooLarge) as refused:
            await storage.save(watched(), declared_type="image/png")
    finally:
        await storage.close()
    assert refused.value.status_code == 413
    assert len(pending_seen) == 1  # the multipart upload had begun
    assert await objects_in(bucket, storage.bucket) == []
    assert await pending_uploads(bucket, storage.bucket) == []


async def test_content_of_another_type_is_refused_and_nothing_is_sent(
    s3_storage: S3Storage, bucket: S3Client
) -> None:
    with pytest.raises(UnsupportedUpload) as refused:
        await s3_storage.save(chunks_of(PDF, 16), declared_type="image/png")
    assert refused.value.status_code == 415
    assert await objects_in(bucket, s3_storage.bucket) == []
    assert await pending_uploads(bucket, s3_storage.bucket) == []


async def test_delete_removes_the_object_and_may_be_repeated(
    s3_storage: S3Storage, bucket: S3Client
) -> None:
    stored = await s3_storage.save(chunks_of(PDF, 16), declared_type="application/pdf")
    assert await s3_storage.exists(stored.key)
    await s3_storage.delete(stored.key)
    assert not await s3_storage.exists(stored.key)
    assert await objects_in(bucket, s3_storage.bucket) == []
    await s3_storage.delete(stored.key)


def test_the_s3_backend_needs_a_bucket(settings: Settings) -> None:
    with pytest.raises(ValueError, match="JUNCTION_S3_BUCKET"):
        open_storage(configured(settings, storage_backend="s3", s3_bucket=None))
