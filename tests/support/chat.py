"""Builders for the chat tests: applications, chats and messages made over HTTP."""

from __future__ import annotations

from typing import Any

import httpx

# Enough for the bursts of these tests; the default limit is per application token.
GENEROUS_LIMITS = '{"default": "100000/minute", "write": "100000/minute"}'


async def new_application(client: httpx.AsyncClient, name: str = "Test App") -> str:
    response = await client.post("/applications", json={"application": {"name": name}})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


async def new_chat(client: httpx.AsyncClient, token: str) -> int:
    response = await client.post(f"/applications/{token}/chats")
    assert response.status_code == 202, response.text
    number: int = response.json()["number"]
    return number


async def new_message(client: httpx.AsyncClient, token: str, chat: int, body: str) -> int:
    response = await client.post(
        f"/applications/{token}/chats/{chat}/messages", json={"message": {"body": body}}
    )
    assert response.status_code == 202, response.text
    number: int = response.json()["number"]
    return number


def keys_everywhere(value: Any) -> set[str]:
    """Every object key in a JSON document, at any depth."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_everywhere(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_everywhere(v)}
    return set()
