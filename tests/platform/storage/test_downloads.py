"""Signed local download links, fetched through the real app."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from junction.platform.storage import LocalStorage, StoredFile, install_storage
from junction.platform.storage.local import link_signature
from junction.settings import Settings
from tests.support.files import PDF, chunks_of, png_bytes
from tests.support.storage import PUBLIC_BASE_URL


@pytest.fixture
async def stored(local_storage: LocalStorage) -> StoredFile:
    return await local_storage.save(
        chunks_of(png_bytes(20_000), 1024), declared_type="image/png", filename="holiday.png"
    )


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    query.update(changes)
    return str(httpx.URL(parts._replace(query="").geturl(), params=query))


async def test_a_signed_link_downloads_the_exact_bytes(
    client: httpx.AsyncClient,
    local_storage: LocalStorage,
    stored: StoredFile,
    settings: Settings,
) -> None:
    url = await local_storage.url(stored.key, ttl_seconds=600, filename=stored.filename)
    assert url.startswith(f"{PUBLIC_BASE_URL}/api/v1/files/{stored.key}?expires=")
    response = await client.get(url)
    assert response.status_code == 200
    assert response.content == (settings.storage_path / stored.key).read_bytes()
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == 'attachment; filename="holiday.png"'
    assert response.headers["x-content-type-options"] == "nosniff"
    cache_control = response.headers["cache-control"]
    assert cache_control.startswith("private, max-age=")
    assert 590 <= int(cache_control.rpartition("=")[2]) <= 600


async def test_a_link_serves_byte_ranges(
    client: httpx.AsyncClient, local_storage: LocalStorage, stored: StoredFile, settings: Settings
) -> None:
    url = await local_storage.url(stored.key)
    response = await client.get(url, headers={"Range": "bytes=0-7"})
    assert response.status_code == 206
    assert response.content == (settings.storage_path / stored.key).read_bytes()[:8]


async def test_a_non_ascii_name_is_sent_as_filename_star(
    client: httpx.AsyncClient, local_storage: LocalStorage
) -> None:
    stored = await local_storage.save(chunks_of(PDF, 32), declared_type="application/pdf")
    response = await client.get(await local_storage.url(stored.key, filename="Résumé 2026.pdf"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"Resume 2026.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%202026.pdf"
    )


async def test_without_a_name_the_file_is_saved_under_its_keys_name(
    client: httpx.AsyncClient, local_storage: LocalStorage, stored: StoredFile
) -> None:
    response = await client.get(await local_storage.url(stored.key))
    assert response.status_code == 200
    key_name = stored.key.rpartition("/")[2]
    assert response.headers["content-disposition"] == f'attachment; filename="{key_name}"'


@pytest.mark.parametrize(
    "changes",
    [
        {"signature": "0" * 64},
        {"signature": "é"},
        {"filename": "other.png"},
        {"expires": str(int(time.time()) + 86_400)},
    ],
    ids=["signature", "non-ascii-signature", "filename", "expiry"],
)
async def test_a_tampered_link_is_forbidden(
    client: httpx.AsyncClient,
    local_storage: LocalStorage,
    stored: StoredFile,
    changes: dict[str, str],
) -> None:
    url = await local_storage.url(stored.key, filename="holiday.png")
    response = await client.get(with_query(url, **changes))
    assert response.status_code == 403
    assert response.json() == {"errors": ["The download link is invalid"]}


async def test_a_link_for_one_file_does_not_open_another(
    client: httpx.AsyncClient, local_storage: LocalStorage, stored: StoredFile
) -> None:
    other = await local_storage.save(chunks_of(PDF, 32), declared_type="application/pdf")
    url = await local_storage.url(stored.key)
    response = await client.get(url.replace(stored.key, other.key))
    assert response.status_code == 403


async def test_an_unsigned_link_is_forbidden(client: httpx.AsyncClient, stored: StoredFile) -> None:
    response = await client.get(f"/api/v1/files/{stored.key}")
    assert response.status_code == 403
    assert response.json() == {"errors": ["The download link is invalid"]}


async def test_an_expired_link_is_forbidden(
    client: httpx.AsyncClient, settings: Settings, stored: StoredFile
) -> None:
    expires = int(time.time()) - 1
    signature = link_signature(settings, stored.key, expires, None)
    response = await client.get(
        f"/api/v1/files/{stored.key}", params={"expires": expires, "signature": signature}
    )
    assert response.status_code == 403
    assert response.json() == {"errors": ["The download link has expired"]}


async def test_a_link_to_a_deleted_file_finds_nothing(
    client: httpx.AsyncClient, local_storage: LocalStorage, stored: StoredFile
) -> None:
    url = await local_storage.url(stored.key)
    await local_storage.delete(stored.key)
    response = await client.get(url)
    assert response.status_code == 404
    assert response.json() == {"errors": ["The file does not exist"]}


async def test_a_signed_key_outside_the_folder_finds_nothing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    key = "uploads/../../outside.txt"
    (settings.storage_path.parent / "outside.txt").write_text("secret")
    expires = int(time.time()) + 60
    signature = link_signature(settings, key, expires, None)
    response = await client.get(
        "/api/v1/files/uploads/%2E%2E/%2E%2E/outside.txt",
        params={"expires": expires, "signature": signature},
    )
    assert response.status_code == 404
    assert response.json() == {"errors": ["No stored file has this key"]}


async def test_the_download_route_is_in_the_openapi_document_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    install_storage(app)  # a second call, after the fixture's, adds nothing
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/api/v1/files/{key}"]["get"]
    assert operation["tags"] == ["files"]
    assert {"expires", "signature", "filename"} <= {p["name"] for p in operation["parameters"]}
