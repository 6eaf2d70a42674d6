"""``/api/v1/users`` over the app: fields, validation, files, keys, cache and the job rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import select

from junction.app import create_app
from junction.platform.auth import Scope, create_api_key
from junction.platform.cache import MemoryCache, RedisCache
from junction.platform.jobs.models import Job
from junction.profiles.models import User
from junction.settings import Settings
from tests.support.app import running
from tests.support.files import PDF, png_bytes
from tests.support.profiles import ADA, PROFILE_QUEUES, keyed_client, stored_files
from tests.support.queue import jobs_settled
from tests.support.workers import worker_running

pytestmark = pytest.mark.usefixtures("profiles_app")


async def create(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/users", json={**ADA, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_answers_the_user_with_a_uuid_and_pending_sync(
    api: httpx.AsyncClient, profiles_app: FastAPI
) -> None:
    user = await create(api, first_name="  Ada   Augusta ")

    assert user["first_name"] == "Ada Augusta"
    assert user["email"] == "Ada@example.com"  # the domain part is normalised, not the local part
    assert user["date_of_birth"] == "1985-12-10"
    assert user["file"] is None
    assert user["synced_at"] is None
    assert user["sync"] == {
        "status": "pending",
        "attempts": 0,
        "last_error": None,
        "airtable_record_id": None,
    }
    assert len(user["id"]) == 36
    assert user["created_at"].endswith("Z")
    async with profiles_app.state.database.reading() as session:
        row = await session.scalar(select(User))
        jobs = (await session.scalars(select(Job))).all()
    assert row is not None
    assert user["id"] == row.uuid
    assert set(user) == {
        "id",
        "first_name",
        "last_name",
        "email",
        "date_of_birth",
        "file",
        "created_at",
        "updated_at",
        "synced_at",
        "sync",
    }
    assert [(job.name, job.payload) for job in jobs] == [
        ("profiles.sync_airtable", {"user_id": row.id})
    ]


async def test_rails_style_wrapper_is_accepted(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/users", json={"user": ADA})
    assert response.status_code == 201
    assert response.json()["last_name"] == "Lovelace"


async def test_get_list_filter_and_pagination(api: httpx.AsyncClient) -> None:
    made = [await create(api, email=f"user{i}@example.com") for i in range(5)]

    one = await api.get(f"/api/v1/users/{made[2]['id']}")
    assert one.status_code == 200
    assert one.json()["email"] == "user2@example.com"

    page = (await api.get("/api/v1/users", params={"page": 2, "per_page": 2})).json()
    assert [u["email"] for u in page["data"]] == ["user2@example.com", "user3@example.com"]
    assert page["meta"]["pagination"] == {
        "current_page": 2,
        "per_page": 2,
        "total_count": 5,
        "total_pages": 3,
    }
    found = (await api.get("/api/v1/users", params={"email": "USER4@example.COM"})).json()
    assert [u["id"] for u in found["data"]] == [made[4]["id"]]


async def test_duplicate_email_in_any_case_is_409(api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.post("/api/v1/users", json={**ADA, "email": "ada@EXAMPLE.com"})
    assert response.status_code == 409
    assert response.json() == {"errors": ["A user with the email ada@example.com already exists"]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"first_name": "   "}, "first_name: Value error, must not be blank"),
        ({"last_name": "x" * 101}, "last_name: Value error, must be at most 100 characters"),
        ({"first_name": "Ada\x00"}, "first_name: Value error, must not contain control characters"),
        ({"date_of_birth": "2999-01-01"}, "date_of_birth: Value error, must be in the past"),
        ({"date_of_birth": "1815-02-30"}, "date_of_birth: Input should be a valid date"),
        ({"admin": True}, "admin: Extra inputs are not permitted"),
    ],
)
async def test_invalid_fields_are_422(
    api: httpx.AsyncClient, change: dict[str, Any], message: str
) -> None:
    response = await api.post("/api/v1/users", json={**ADA, **change})
    assert response.status_code == 422
    assert any(m.startswith(message) for m in response.json()["errors"]), response.json()


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "ada@@example.com", "x" * 330 + "@a.io"])
async def test_a_bad_email_is_422(api: httpx.AsyncClient, email: str) -> None:
    response = await api.post("/api/v1/users", json={**ADA, "email": email})
    assert response.status_code == 422
    assert response.json()["errors"][0].startswith("email:")


@pytest.mark.parametrize("body", [b"", b"[]", b"{}", b"{not json", b'"text"'])
async def test_a_missing_or_malformed_body_is_422(api: httpx.AsyncClient, body: bytes) -> None:
    response = await api.post(
        "/api/v1/users", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "errors" in response.json()


async def test_fields_in_another_media_type_are_415(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/users", content=b'{"first_name": "Ada"}', headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["errors"][0]


async def test_unknown_and_malformed_ids_are_404(api: httpx.AsyncClient) -> None:
    for user_id in ("00000000-0000-4000-8000-000000000000", "1", "not-a-uuid", "x" * 64):
        response = await api.get(f"/api/v1/users/{user_id}")
        assert response.status_code == 404, user_id
        assert response.json() == {"errors": [f"User {user_id} not found"]}


async def test_keys_and_scopes_are_required(api: httpx.AsyncClient, profiles_app: FastAPI) -> None:
    async with profiles_app.state.database.transaction() as session:
        _, read_only = await create_api_key(session, "reader", [Scope.read])
    anonymous = await api.get("/api/v1/users", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    refused = await api.post(
        "/api/v1/users", json=ADA, headers={"Authorization": f"Bearer {read_only}"}
    )
    assert refused.status_code == 403
    listed = await api.get("/api/v1/users", headers={"Authorization": f"Bearer {read_only}"})
    assert listed.status_code == 200


async def test_patch_changes_fields_and_bumps_the_sync(
    api: httpx.AsyncClient, profiles_app: FastAPI
) -> None:
    user = await create(api)
    other = await create(api, email="other@example.com")

    changed = await api.patch(f"/api/v1/users/{user['id']}", json={"last_name": "King"})
    assert changed.status_code == 200
    assert changed.json()["last_name"] == "King"
    assert changed.json()["first_name"] == "Ada"
    taken = await api.patch(f"/api/v1/users/{user['id']}", json={"email": other["email"]})
    assert taken.status_code == 409
    empty = await api.patch(f"/api/v1/users/{user['id']}", json={})
    assert empty.status_code == 422
    null = await api.patch(f"/api/v1/users/{user['id']}", json={"email": None})
    assert null.status_code == 422
    async with profiles_app.state.database.reading() as session:
        row = await session.scalar(select(User).where(User.uuid == user["id"]))
    assert row is not None
    assert row.sync_version == 2
    assert row.synced_version == 0


async def test_every_write_invalidates_the_cached_reads(api: httpx.AsyncClient) -> None:
    user = await create(api)
    path = f"/api/v1/users/{user['id']}"
    hits_before = _cache_lookups("hit")

    assert (await api.get(path)).json()["last_name"] == "Lovelace"
    assert (await api.get(path)).json()["last_name"] == "Lovelace"
    assert (await api.get("/api/v1/users")).json()["meta"]["pagination"]["total_count"] == 1
    assert _cache_lookups("hit") == hits_before + 1

    await api.patch(path, json={"last_name": "King"})
    assert (await api.get(path)).json()["last_name"] == "King"
    await create(api, email="second@example.com")
    assert (await api.get("/api/v1/users")).json()["meta"]["pagination"]["total_count"] == 2
    await api.put(f"{path}/file", content=png_bytes(), headers={"Content-Type": "image/png"})
    assert (await api.get(path)).json()["file"]["content_type"] == "image/png"
    await api.delete(f"{path}/file")
    assert (await api.get(path)).json()["file"] is None
    assert (await api.delete(path)).status_code == 204
    assert (await api.get(path)).status_code == 404
    assert (await api.get("/api/v1/users")).json()["meta"]["pagination"]["total_count"] == 1


def _cache_lookups(result: str) -> float:
    value = REGISTRY.get_sample_value(
        "junction_cache_lookups_total", {"namespace": "users", "result": result}
    )
    return value or 0.0


async def test_create_with_a_file_stores_it_and_links_to_it(
    api: httpx.AsyncClient, files_dir: Path
) -> None:
    image = png_bytes(5000)
    response = await api.post(
        "/api/v1/users",
        data=ADA,
        files={"file": ("../../etc/pass\nwd.png", image, "image/png")},
    )
    assert response.status_code == 201, response.text
    file = response.json()["file"]
    assert file["filename"] == "pass wd.png" or "/" not in file["filename"]
    assert file["content_type"] == "image/png"
    assert file["size"] == len(image)
    assert file["expires_in"] == 3600
    download = await api.get(file["url"], headers={"Authorization": ""})
    assert download.status_code == 200
    assert download.content == image
    assert [path.name.endswith(".png") for path in stored_files(files_dir)] == [True]


@pytest.mark.parametrize(
    ("part", "status", "message"),
    [
        (("cv.png", PDF, "image/png"), 415, "content is application/pdf"),
        (("run.sh", b"#!/bin/sh\nrm -rf /\n" * 20, "text/x-shellscript"), 415, "not accepted"),
        (("empty.png", b"", "image/png"), 422, "empty"),
        (("big.png", png_bytes(2 * 1024 * 1024), "image/png"), 413, "limit"),
    ],
)
async def test_a_refused_upload_leaves_nothing_behind(
    api: httpx.AsyncClient,
    files_dir: Path,
    part: tuple[str, bytes, str],
    status: int,
    message: str,
) -> None:
    response = await api.post("/api/v1/users", data=ADA, files={"file": part})

    assert response.status_code == status, response.text
    assert message in " ".join(response.json()["errors"]).lower()
    assert stored_files(files_dir) == []
    assert (await api.get("/api/v1/users")).json()["data"] == []


async def test_a_refused_user_leaves_no_file_behind(
    api: httpx.AsyncClient, files_dir: Path
) -> None:
    await create(api)
    duplicate = await api.post(
        "/api/v1/users", data=ADA, files={"file": ("a.png", png_bytes(), "image/png")}
    )
    invalid = await api.post(
        "/api/v1/users",
        data={**ADA, "email": "nope"},
        files={"file": ("a.png", png_bytes(), "image/png")},
    )
    assert (duplicate.status_code, invalid.status_code) == (409, 422)
    assert stored_files(files_dir) == []


async def test_replacing_and_removing_the_file_deletes_the_old_object(
    api: httpx.AsyncClient, profiles_app: FastAPI, files_dir: Path
) -> None:
    user = await create(api)
    path = f"/api/v1/users/{user['id']}/file"
    first = await api.put(path, content=png_bytes(), headers={"Content-Type": "image/png"})
    assert first.status_code == 200, first.text
    replaced = await api.patch(
        f"/api/v1/users/{user['id']}", files={"file": ("cv.pdf", PDF, "application/pdf")}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["file"]["content_type"] == "application/pdf"

    database = profiles_app.state.database
    async with worker_running(
        database, profiles_app.state.settings, PROFILE_QUEUES, app=profiles_app
    ):
        await jobs_settled(database)
    assert [p.suffix for p in stored_files(files_dir)] == [".pdf"]

    assert (await api.delete(path)).json()["file"] is None
    async with worker_running(
        database, profiles_app.state.settings, PROFILE_QUEUES, app=profiles_app
    ):
        await jobs_settled(database)
    assert stored_files(files_dir) == []


async def test_raw_upload_without_a_type_is_415(api: httpx.AsyncClient, files_dir: Path) -> None:
    user = await create(api)
    response = await api.put(
        f"/api/v1/users/{user['id']}/file",
        content=png_bytes(),
        headers={"Content-Type": ""},
    )
    assert response.status_code == 415
    assert stored_files(files_dir) == []


async def test_deleting_an_unsynced_user_removes_it_and_frees_the_email(
    api: httpx.AsyncClient, profiles_app: FastAPI
) -> None:
    user = await create(api)
    assert (await api.delete(f"/api/v1/users/{user['id']}")).status_code == 204
    assert (await api.delete(f"/api/v1/users/{user['id']}")).status_code == 404
    await create(api)
    async with profiles_app.state.database.reading() as session:
        assert len((await session.scalars(select(User))).all()) == 1


async def test_creates_and_uploads_are_rate_limited_per_key(
    profiles_settings: Settings,
) -> None:
    limited = profiles_settings.model_copy(
        update={
            "rate_limits": {
                "default": "1000/minute",
                "user_create": "2/minute",
                "user_upload": "1/minute",
            }
        }
    )
    app = create_app(limited)
    async with running(app), keyed_client(app, Scope.read, Scope.write) as api:
        statuses = [
            (
                await api.post("/api/v1/users", json={**ADA, "email": f"u{i}@example.com"})
            ).status_code
            for i in range(3)
        ]
        refused = await api.post("/api/v1/users", json={**ADA, "email": "late@example.com"})
        user = (await api.get("/api/v1/users")).json()["data"][0]
        path = f"/api/v1/users/{user['id']}/file"
        uploads = [
            (
                await api.put(path, content=png_bytes(), headers={"Content-Type": "image/png"})
            ).status_code
            for _ in range(2)
        ]
    assert statuses == [201, 201, 429]
    assert refused.headers["Retry-After"].isdigit()
    assert uploads == [200, 429]


async def test_reads_keep_working_while_redis_is_down(
    api: httpx.AsyncClient, profiles_app: FastAPI
) -> None:
    dead = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2)
    profiles_app.state.cache = RedisCache(dead, MemoryCache(100, 60), retry_seconds=30)
    fallbacks = REGISTRY.get_sample_value("junction_cache_redis_fallbacks_total") or 0.0
    try:
        user = await create(api)
        path = f"/api/v1/users/{user['id']}"
        assert (await api.get(path)).json()["last_name"] == "Lovelace"
        await api.patch(path, json={"last_name": "King"})
        assert (await api.get(path)).json()["last_name"] == "King"
    finally:
        await profiles_app.state.cache.close()
    assert (REGISTRY.get_sample_value("junction_cache_redis_fallbacks_total") or 0) > fallbacks
