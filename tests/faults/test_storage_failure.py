"""Storage failing during uploads (a folder that cannot be written, S3 answering 500): the
create is refused cleanly (503 in the error shape, with Retry-After, never a 500), the user
is not created, and nothing half-written is left in the store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from aiobotocore.session import get_session
from fastapi import FastAPI
from moto.server import ThreadedMotoServer
from pydantic import SecretStr
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from junction.app import create_app
from junction.platform.auth import Scope
from junction.platform.db import Database
from junction.profiles.models import User
from junction.settings import Settings
from tests.support.app import running
from tests.support.files import png_bytes
from tests.support.live import free_port, serving_in_thread
from tests.support.profiles import ADA, keyed_client, stored_files

MiB = 1024 * 1024
INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)


@asynccontextmanager
async def users_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings)
    async with running(app):
        while not app.state.startup.migrated:
            await asyncio.sleep(0.01)
        async with keyed_client(app, Scope.read, Scope.write) as client:
            yield client


async def users(database: Database) -> int:
    async with database.reading() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


def assert_refused_cleanly(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"errors": ["File storage is unavailable; try again shortly"]}
    assert int(response.headers["Retry-After"]) > 0


async def test_a_folder_that_cannot_be_written(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    blocker = tmp_path / "files"
    blocker.write_text("a file where the storage folder should be")
    configured = settings.model_copy(update={"storage_path": blocker, "run_embedded_worker": False})
    async with users_api(configured) as api:
        response = await api.post(
            "/api/v1/users", data=ADA, files={"file": ("ada.png", png_bytes(), "image/png")}
        )
    assert_refused_cleanly(response)
    assert await users(database) == 0
    assert stored_files(tmp_path) == [blocker]


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def failing_s3(upstream: str) -> Starlette:
    """S3 in front of ``upstream`` that answers 500 to every object write but the first
    part of a multipart upload: the creation, the first part and the abort go through."""

    async def forward(request: Request) -> Response:
        body = await request.body()
        is_object = request.url.path.strip("/").count("/") >= 1
        part = request.query_params.get("partNumber")
        if request.method == "PUT" and is_object and part != "1":
            return Response(INTERNAL_ERROR, status_code=500, media_type="application/xml")
        async with httpx.AsyncClient(base_url=upstream) as client:
            answer = await client.request(
                request.method,
                request.url.path,
                params=list(request.query_params.multi_items()),
                headers=[(k, v) for k, v in request.headers.items() if k != "host"],
                content=body,
            )
        return Response(answer.content, answer.status_code, headers=dict(answer.headers))

    return Starlette(
        routes=[Route("/{path:path}", forward, methods=["GET", "PUT", "POST", "DELETE", "HEAD"])]
    )


@pytest.mark.parametrize("size", [0, 12 * MiB], ids=["one request", "multipart"])
async def test_s3_answering_500(
    settings: Settings, database: Database, moto: str, size: int
) -> None:
    bucket = f"junction-{uuid.uuid4().hex[:12]}"
    async with get_session().create_client(
        "s3",
        endpoint_url=moto,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as s3:
        await s3.create_bucket(Bucket=bucket)
        with serving_in_thread(failing_s3(moto), "failing S3") as endpoint:
            configured = settings.model_copy(
                update={
                    "storage_backend": "s3",
                    "s3_endpoint_url": endpoint,
                    "s3_bucket": bucket,
                    "aws_access_key_id": SecretStr("testing"),
                    "aws_secret_access_key": SecretStr("testing"),
                    "upload_max_bytes": 20 * MiB,
                    "run_embedded_worker": False,
                }
            )
            async with users_api(configured) as api:
                response = await api.post(
                    "/api/v1/users",
                    data=ADA,
                    files={"file": ("ada.png", png_bytes(size), "image/png")},
                )
        objects = await s3.list_objects_v2(Bucket=bucket)
        uploads = await s3.list_multipart_uploads(Bucket=bucket)
    assert_refused_cleanly(response)
    assert await users(database) == 0
    assert objects.get("KeyCount", 0) == 0
    assert uploads.get("Uploads", []) == []
