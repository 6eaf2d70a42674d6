"""A broadcast caused by a database change goes out after the commit, never on rollback."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from junction.platform.realtime import Broadcast, Broker, publish_after_commit


async def _listening(broker: Broker, stream: str) -> asyncio.Queue[Broadcast]:
    received: asyncio.Queue[Broadcast] = asyncio.Queue()
    await broker.subscribe(stream, received.put_nowait)
    return received


async def test_published_once_the_transaction_commits(started_app: FastAPI) -> None:
    broker: Broker = started_app.state.broker
    received = await _listening(broker, "user_updates")
    async with started_app.state.database.transaction() as session:
        await session.execute(text("SELECT 1"))
        publish_after_commit(session, broker, "user_updates", {"type": "new_user"})
        await asyncio.sleep(0.05)
        assert received.empty(), "published before the commit"
    broadcast = await asyncio.wait_for(received.get(), 5)
    assert broadcast.payload == '{"type":"new_user"}'


async def test_never_published_when_the_transaction_rolls_back(started_app: FastAPI) -> None:
    broker: Broker = started_app.state.broker
    received = await _listening(broker, "user_updates")

    async def failing_write() -> None:
        async with started_app.state.database.transaction() as session:
            publish_after_commit(session, broker, "user_updates", {"type": "rolled_back"})
            raise RuntimeError("the write fails")

    with pytest.raises(RuntimeError):
        await failing_write()
    async with started_app.state.database.transaction() as session:
        publish_after_commit(session, broker, "user_updates", {"type": "committed"})
    broadcast = await asyncio.wait_for(received.get(), 5)
    assert broadcast.payload == '{"type":"committed"}'
    assert received.empty()
