"""Concurrent message creates share transactions, and each still gets its own answer."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import CacheStats

from junction.chat.batching import MessageBatcher
from junction.chat.numbering import NumberAllocator
from tests.support.chat import new_application, new_chat

CHATS = 3
MESSAGES_PER_CHAT = 20


async def post_message(
    client: httpx.AsyncClient, token: str, chat: int, body: str
) -> httpx.Response:
    return await client.post(
        f"/applications/{token}/chats/{chat}/messages", json={"message": {"body": body}}
    )


async def test_concurrent_creates_are_numbered_committed_and_searchable(
    client: httpx.AsyncClient,
) -> None:
    token = await new_application(client)
    chats = [await new_chat(client, token) for _ in range(CHATS)]
    sends = [
        post_message(client, token, chat, f"burst {chat} word{chat}x{index}")
        for index in range(MESSAGES_PER_CHAT)
        for chat in chats
    ]
    sends += [post_message(client, token, CHATS + 1, "no such chat") for _ in range(3)]
    answers = await asyncio.gather(*sends)
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {202: CHATS * MESSAGES_PER_CHAT, 404: 3}
    for chat in chats:
        listed = await client.get(
            f"/applications/{token}/chats/{chat}/messages", params={"per_page": 1000}
        )
        assert [m["number"] for m in listed.json()] == list(range(1, MESSAGES_PER_CHAT + 1))
        found = await client.get(
            f"/applications/{token}/chats/{chat}/messages/search", params={"q": f"word{chat}x7"}
        )
        assert [m["body"] for m in found.json()] == [f"burst {chat} word{chat}x7"]
    assert all("not found" in a.json()["errors"][0] for a in answers if a.status_code == 404)


async def test_a_failing_create_does_not_fail_the_others(
    started_app: FastAPI, client: httpx.AsyncClient
) -> None:
    token = await new_application(client)
    chat = await new_chat(client, token)
    state = started_app.state
    batcher = MessageBatcher(state.database, NumberAllocator(state.redis), state.broker)
    # A chat number no database column can hold: SQLite finds no such chat, while
    # PostgreSQL refuses the whole statement; either way only this create fails.
    impossible = batcher.create(token, 2**70, "never stored")
    good = [batcher.create(token, chat, f"kept {index}") for index in range(5)]
    outcomes = await asyncio.gather(impossible, *good, return_exceptions=True)
    assert isinstance(outcomes[0], Exception)
    numbers = [o.accepted.number for o in outcomes[1:] if not isinstance(o, BaseException)]
    assert sorted(numbers) == [1, 2, 3, 4, 5]
    listed = (await client.get(f"/applications/{token}/chats/{chat}/messages")).json()
    assert sorted(m["body"] for m in listed) == [f"kept {index}" for index in range(5)]


@pytest.mark.parametrize("count", [1, 40])
async def test_every_create_waits_for_its_commit(
    started_app: FastAPI, client: httpx.AsyncClient, count: int
) -> None:
    token = await new_application(client)
    chat = await new_chat(client, token)
    answers = await asyncio.gather(
        *(post_message(client, token, chat, f"durable {i}") for i in range(count))
    )
    assert {a.status_code for a in answers} == {202}
    # Read on a connection of its own: what the answers promised is committed.
    async with started_app.state.database.reading() as session:
        stored = await session.scalar(text("SELECT count(*) FROM chat_messages"))
    assert stored == count


async def test_a_batch_reuses_compiled_statements(
    started_app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A batch's statements are compiled once, whatever its size (compiling them per batch
    cost more CPU than running them)."""
    token = await new_application(client)
    chats = [await new_chat(client, token) for _ in range(2)]
    state = started_app.state
    batcher = MessageBatcher(state.database, NumberAllocator(state.redis), state.broker)
    cache_stats: list[tuple[CacheStats, str]] = []

    def record(*args: Any) -> None:
        statement, context = args[2], args[4]
        if "chat" in statement or "jobs" in statement:
            cache_stats.append((context.cache_hit, statement.split()[0]))

    async def create_messages(count: int) -> None:
        creates = [batcher.create(token, chats[i % 2], f"message {i}") for i in range(count)]
        await asyncio.gather(*creates)

    await create_messages(3)
    engine = state.database.write_engine.sync_engine
    event.listen(engine, "after_cursor_execute", record)
    try:
        await create_messages(7)
    finally:
        event.remove(engine, "after_cursor_execute", record)
    assert {"SELECT", "INSERT"} <= {verb for _, verb in cache_stats}
    assert {stat for stat, _ in cache_stats} == {CacheStats.CACHE_HIT}
