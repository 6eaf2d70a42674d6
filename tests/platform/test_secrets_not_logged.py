"""Secrets never reach the logs: a real `junction serve` (JSON logs at debug, every line
kept) driven through the flows that carry secrets, then every line it wrote searched for
them; and `junction config`'s output."""

from __future__ import annotations

import subprocess
import sys

import httpx

from junction.platform.auth import Scope
from junction.platform.db import Database
from junction.settings import Settings
from tests.support.console import api_key
from tests.support.files import png_bytes
from tests.support.live import environment_for, start_live_server
from tests.support.profiles import ADA

SECRET_KEY = "secret-key-" + "K" * 40
AIRTABLE_KEY = "patAIRTABLESECRET.0123456789abcdef"
AWS_SECRET = "awsSECRETaccessKEY0123456789"


async def test_no_flow_writes_a_secret_to_the_logs(settings: Settings, database: Database) -> None:
    key = await api_key(database, Scope.read, Scope.write, Scope.admin)
    secrets_env = {
        "JUNCTION_SECRET_KEY": SECRET_KEY,
        "AIRTABLE_API_KEY": AIRTABLE_KEY,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "JUNCTION_LOG_LEVEL": "DEBUG",
    }
    with start_live_server(settings, **secrets_env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as client:
            auth = {"Authorization": f"Bearer {key}"}
            created = await client.post(
                "/api/v1/users",
                headers=auth,
                data=ADA,
                files={"file": ("ada.png", png_bytes(), "image/png")},
            )
            assert created.status_code == 201, created.text
            user = created.json()
            await client.get(f"/api/v1/users/{user['id']}", headers=auth)
            await client.get("/api/v1/users", headers={"Authorization": f"Bearer {key}x"})
            await client.post(f"/api/v1/users/{user['id']}/sync", headers=auth)
            application = await client.post("/applications", json={"application": {"name": "a"}})
            chat = await client.post(f"/applications/{application.json()['token']}/chats")
            location = chat.headers["Location"]
            job_token = httpx.URL(location).params["token"]
            assert (await client.get(location)).status_code == 200
            await client.post(
                "/console/login",
                files={"key": (None, key)},
                headers={"Origin": server.base_url},
            )
            await client.post(
                "/console/login",
                files={"key": (None, key + "wrong")},
                headers={"Origin": server.base_url},
            )
        logs = server.logs()
    config = subprocess.run(
        [sys.executable, "-m", "junction", "config"],
        env=environment_for(settings, **secrets_env),
        capture_output=True,
        text=True,
        check=True,
    )
    key_secret = key.rsplit("_", 1)[1]
    assert '"path": "/api/v1/users"' in logs  # the access log is there to search
    for name, secret in {
        "the secret key": SECRET_KEY,
        "the Airtable key": AIRTABLE_KEY,
        "the AWS secret": AWS_SECRET,
        "an API key's secret": key_secret,
        "a job's token": job_token,
    }.items():
        assert secret not in logs, f"{name} is in the server's logs"
        assert secret not in config.stdout + config.stderr, f"{name} is in `junction config`"
