"""Logging in to the console and sending its forms, as a browser would."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import select

from junction.console.models import AuditEntry
from junction.platform.auth import Scope, create_api_key
from junction.platform.db import Database, utcnow
from junction.platform.integrations.models import DeadLetter, IntegrationRun

_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


async def api_key(database: Database, *scopes: Scope, name: str = "operator") -> str:
    async with database.transaction() as session:
        _, plain = await create_api_key(session, name, scopes)
    return plain


def origin(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Origin": str(client.base_url).rstrip("/")}


async def log_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post(
        "/console/login",
        files={"key": (None, key), "next": (None, "/console")},
        headers=origin(client),
    )


async def session_token(client: httpx.AsyncClient) -> str:
    """The session's token against cross-site requests, as every page carries it."""
    page = await client.get("/console/audit")
    found = _TOKEN.search(page.text)
    assert found is not None, f"no token on the page: {page.status_code}"
    return found.group(1)


async def post_form(
    client: httpx.AsyncClient, path: str, token: str | None, **fields: str
) -> httpx.Response:
    parts: dict[str, Any] = {name: (None, value) for name, value in fields.items()}
    if token is not None:
        parts["csrf"] = (None, token)
    return await client.post(path, files=parts or {"_": (None, "")}, headers=origin(client))


async def audit_entries(database: Database) -> list[AuditEntry]:
    async with database.reading() as session:
        return list((await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all())


async def wellness_dead_letter(database: Database, external_id: str, payload: Any) -> int:
    """A client record the wellness sync set aside, as a run of it would have."""
    async with database.transaction() as session:
        run = IntegrationRun(integration="wellness", kind="clients", trigger="schedule")
        session.add(run)
        await session.flush()
        letter = DeadLetter(
            integration="wellness",
            kind="clients",
            run_id=run.id,
            external_id=external_id,
            payload=payload,
            error="refused by an earlier release",
            created_at=utcnow(),
        )
        session.add(letter)
        await session.flush()
        return letter.id


def wellness_client(external_id: str, first_name: str) -> dict[str, Any]:
    """A client as the wellness API sends it."""
    return {
        "id": external_id,
        "first_name": first_name,
        "last_name": "Example",
        "email": f"{external_id}@example.com",
        "phone": None,
        "date_of_birth": None,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-02T00:00:00Z",
    }
