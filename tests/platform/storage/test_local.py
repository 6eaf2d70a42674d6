"""The local backend on a real folder: streaming in, checks, cleanup, keys."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from junction.platform.storage import (
    EmptyUpload,
    InvalidFileKey,
    LocalStorage,
    UnsupportedUpload,
    UploadTooLarge,
    open_storage,
)
from junction.platform.storage.files import checked_key
from junction.settings import Settings
from tests.support.files import JPEG, PDF, chunks_of, png_bytes
from tests.support.storage import configured, files_under


def uploads_counted(outcome: str) -> float:
    labels = {"backend": "local", "outcome": outcome}
    return REGISTRY.get_sample_value("junction_storage_uploads_total", labels) or 0.0


def bytes_counted() -> float:
    labels = {"backend": "local"}
    return REGISTRY.get_sample_value("junction_storage_stored_bytes_total", labels) or 0.0


async def test_open_storage_gives_the_local_backend_by_default(settings: Settings) -> None:
    storage = open_storage(settings)
    assert isinstance(storage, LocalStorage)
    await storage.close()


async def test_a_file_is_stored_under_a_generated_key_and_reads_back(
    local_storage: LocalStorage, settings: Settings
) -> None:
    data = png_bytes(50_000)
    stored_before, bytes_before = uploads_counted("stored"), bytes_counted()
    stored = await local_storage.save(
        chunks_of(data, 4096), declared_type="image/png", filename="holiday.png"
    )
    assert checked_key(stored.key) == stored.key
    assert stored.key.endswith(".png")
    assert (stored.size, stored.content_type) == (len(data), "image/png")
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.filename == "holiday.png"
    assert (settings.storage_path / stored.key).read_bytes() == data
    assert files_under(settings.storage_path) == [settings.storage_path / stored.key]
    assert await local_storage.exists(stored.key)
    assert uploads_counted("stored") == stored_before + 1
    assert bytes_counted() == bytes_before + len(data)


async def test_a_hostile_client_name_gives_a_safe_display_name_and_a_generated_key(
    local_storage: LocalStorage, settings: Settings, tmp_path: Path
) -> None:
    stored = await local_storage.save(
        chunks_of(PDF, 16), declared_type="application/pdf", filename="../../etc/passwd"
    )
    assert stored.filename == "passwd"
    assert stored.key.startswith("uploads/")
    assert "passwd" not in stored.key
    assert files_under(tmp_path) == [settings.storage_path / stored.key]


async def test_a_missing_name_is_replaced_by_the_keys_own(local_storage: LocalStorage) -> None:
    stored = await local_storage.save(chunks_of(JPEG, 7), declared_type="image/jpg")
    assert stored.content_type == "image/jpeg"
    assert stored.filename == stored.key.rpartition("/")[2]
    assert stored.filename.endswith(".jpg")


async def test_the_file_is_written_while_small_chunks_still_arrive(
    local_storage: LocalStorage, settings: Settings
) -> None:
    data = png_bytes(300_000)
    partial_sizes: list[int] = []

    async def watched() -> AsyncIterator[bytes]:
        async for chunk in chunks_of(data, 1000):
            partial_sizes.extend(p.stat().st_size for p in settings.storage_path.rglob(".*"))
            yield chunk

    stored = await local_storage.save(watched(), declared_type="image/png")
    assert (settings.storage_path / stored.key).read_bytes() == data
    # The partial file grew as the chunks came, long before the last one.
    assert 0 < min(partial_sizes) < max(partial_sizes) < len(data)
    assert files_under(settings.storage_path) == [settings.storage_path / stored.key]


async def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(settings: Settings) -> None:
    storage = LocalStorage(configured(settings, upload_max_bytes=100_000))
    partial_seen = False

    async def watched() -> AsyncIterator[bytes]:
        nonlocal partial_seen
        async for chunk in chunks_of(png_bytes(250_000), 1000):
            partial_seen = partial_seen or any(settings.storage_path.rglob(".*.partial"))
            yield chunk

    counted_before = uploads_counted("too_large")
    with pytest.raises(UploadTooLarge) as refused:
        await storage.save(watched(), declared_type="image/png", filename="big.png")
    assert refused.value.status_code == 413
    assert "100000 bytes" in refused.value.messages[0]
    assert partial_seen
    assert files_under(settings.storage_path) == []
    assert uploads_counted("too_large") == counted_before + 1


@pytest.mark.parametrize(
    "content", [PDF, b"just some text, not an image\n" * 20], ids=["pdf", "text"]
)
async def test_content_that_is_not_the_declared_type_is_refused(
    local_storage: LocalStorage, settings: Settings, content: bytes
) -> None:
    counted_before = uploads_counted("unsupported")
    with pytest.raises(UnsupportedUpload) as refused:
        await local_storage.save(chunks_of(content, 64), declared_type="image/png")
    assert refused.value.status_code == 415
    assert "declared image/png" in refused.value.messages[0]
    assert not settings.storage_path.exists() or files_under(settings.storage_path) == []
    assert uploads_counted("unsupported") == counted_before + 1


async def test_a_declared_type_outside_the_allow_list_is_refused_unread(
    local_storage: LocalStorage, settings: Settings
) -> None:
    read = False

    async def page() -> AsyncIterator[bytes]:
        nonlocal read
        read = True
        yield b"<html><script>alert(1)</script></html>"

    with pytest.raises(UnsupportedUpload) as refused:
        await local_storage.save(page(), declared_type="text/html; charset=utf-8")
    assert refused.value.status_code == 415
    assert refused.value.messages[0].startswith("Files of type text/html are not accepted")
    assert not read
    assert not settings.storage_path.exists()


async def test_text_types_accept_text_but_not_a_disguised_binary(settings: Settings) -> None:
    storage = LocalStorage(configured(settings, upload_allowed_types=["text/plain"]))
    stored = await storage.save(chunks_of(b"hello\n", 2), declared_type="text/plain")
    assert (stored.content_type, stored.key[-4:]) == ("text/plain", ".txt")
    with pytest.raises(UnsupportedUpload, match="content is image/png"):
        await storage.save(chunks_of(png_bytes(), 10), declared_type="text/plain")
    assert files_under(settings.storage_path) == [settings.storage_path / stored.key]


@pytest.mark.parametrize("chunks", [[], [b"", b""]], ids=["no-chunks", "empty-chunks"])
async def test_an_empty_upload_is_refused(
    local_storage: LocalStorage, settings: Settings, chunks: list[bytes]
) -> None:
    async def stream() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    with pytest.raises(EmptyUpload) as refused:
        await local_storage.save(stream(), declared_type="image/png")
    assert refused.value.status_code == 422
    assert not settings.storage_path.exists()


async def test_delete_removes_the_file_and_may_be_repeated(
    local_storage: LocalStorage, settings: Settings
) -> None:
    stored = await local_storage.save(chunks_of(png_bytes(), 100), declared_type="image/png")
    await local_storage.delete(stored.key)
    assert not await local_storage.exists(stored.key)
    assert files_under(settings.storage_path) == []
    await local_storage.delete(stored.key)


@pytest.mark.parametrize(
    "key", ["../outside.txt", "/etc/passwd", "uploads/2026/11/23/../../../../outside.txt"]
)
async def test_keys_that_leave_the_folder_are_refused(
    local_storage: LocalStorage, tmp_path: Path, key: str
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    for attempt in (
        local_storage.delete(key),
        local_storage.exists(key),
        local_storage.url(key),
    ):
        with pytest.raises(InvalidFileKey):
            await attempt
    assert outside.read_text() == "keep me"
