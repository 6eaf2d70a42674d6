"""Users' files on S3 (moto's server over real HTTP): upload, presigned link, replacement."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from aiobotocore.session import get_session

from junction.app import create_app
from junction.platform.auth import Scope
from junction.settings import Settings
from tests.platform.storage.test_s3 import moto_endpoint
from tests.support.app import running
from tests.support.files import PDF, png_bytes
from tests.support.profiles import ADA, PROFILE_QUEUES, keyed_client
from tests.support.queue import jobs_settled
from tests.support.storage import configured
from tests.support.workers import worker_running

__all__ = ["moto_endpoint"]


async def test_a_users_file_lives_in_the_bucket_and_is_replaced_there(
    profiles_settings: Settings, moto_endpoint: str
) -> None:
    bucket = f"junction-{uuid.uuid4().hex[:12]}"
    settings = configured(
        profiles_settings,
        storage_backend="s3",
        s3_endpoint_url=moto_endpoint,
        s3_bucket=bucket,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    async with get_session().create_client(
        "s3",
        region_name=settings.s3_region,
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as s3:
        await s3.create_bucket(Bucket=bucket)
        app = create_app(settings)
        async with running(app):
            while not app.state.startup.migrated:
                await asyncio.sleep(0.01)
            async with keyed_client(app, Scope.read, Scope.write) as api:
                image = png_bytes(4000)
                created = await api.post(
                    "/api/v1/users", data=ADA, files={"file": ("me.png", image, "image/png")}
                )
                assert created.status_code == 201, created.text
                url = created.json()["file"]["url"]
                assert url.startswith(f"{moto_endpoint}/{bucket}/uploads/")
                async with httpx.AsyncClient() as anonymous:
                    assert (await anonymous.get(url)).content == image

                user_id = created.json()["id"]
                replaced = await api.put(
                    f"/api/v1/users/{user_id}/file",
                    content=PDF,
                    headers={"Content-Type": "application/pdf"},
                )
                assert replaced.status_code == 200, replaced.text
                async with worker_running(app.state.database, settings, PROFILE_QUEUES, app=app):
                    await jobs_settled(app.state.database)
        listed = await s3.list_objects_v2(Bucket=bucket)
        keys = [item["Key"] for item in listed.get("Contents", [])]
        assert len(keys) == 1
        assert keys[0].endswith(".pdf")
