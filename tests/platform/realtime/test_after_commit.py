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


async def test_a_transactions_broadcasts_go_out_together_in_order(started_app: FastAPI) -> None:
    broker: Broker = started_app.state.broker
    first, second = await _listening(broker, "chat:a"), await _listening(broker, "chat:b")
    async with started_app.state.database.transaction() as session:
        for number in range(1, 31):
            publish_after_commit(session, broker, "chat:" + "ab"[number % 2], {"n": number})
    received = [await asyncio.wait_for(q.get(), 5) for q in (first,) * 15 + (second,) * 15]
    assert [b.payload for b in received[:15]] == [f'{{"n":{n}}}' for n in range(2, 31, 2)]
    assert [b.payload for b in received[15:]] == [f'{{"n":{n}}}' for n in range(1, 31, 2)]
    ids = sorted(received, key=lambda b: b.id)
    assert [b.payload for b in ids] == [f'{{"n":{n}}}' for n in range(1, 31)]
    assert [b.id for b in ids] == list(range(ids[0].id, ids[0].id + 30))
    # The replay logs hold the same broadcasts, under the same ids.
    assert await broker.replay("chat:a", 0) == received[:15]
    assert await broker.replay("chat:b", ids[0].id) == received[16:]


async def test_a_session_drops_what_it_rolled_back_and_publishes_what_it_commits(
    started_app: FastAPI,
) -> None:
    broker: Broker = started_app.state.broker
    received = await _listening(broker, "user_updates")
    async with started_app.state.database.write_sessions() as session:
        async with session.begin():
            publish_after_commit(session, broker, "user_updates", {"type": "rolled_back"})
            await session.rollback()
        async with session.begin():
            publish_after_commit(session, broker, "user_updates", {"type": "committed"})
    broadcast = await asyncio.wait_for(received.get(), 5)
    assert broadcast.payload == '{"type":"committed"}'
    await asyncio.sleep(0.05)
    assert received.empty()
