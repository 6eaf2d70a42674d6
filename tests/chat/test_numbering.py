"""Numbers are 1..N per parent under concurrency, across processes, and after Redis loses
its keys; every acknowledged create is stored."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest
from redis.asyncio import Redis

from junction.chat.numbering import NumberAllocator
from junction.settings import Settings
from tests.support.chat import GENEROUS_LIMITS, new_application, new_chat
from tests.support.live import LiveServer, start_live_server

CONCURRENT = 200


async def _post_messages(base_urls: list[str], token: str, chat: int, count: int) -> list[int]:
    """``count`` message creates at once, spread over the given servers."""
    clients = [
        httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=100))
        for url in base_urls
    ]
    try:
        responses = await asyncio.gather(
            *(
                clients[i % len(clients)].post(
                    f"/applications/{token}/chats/{chat}/messages",
                    json={"message": {"body": f"concurrent message {i}"}},
                )
                for i in range(count)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    assert all(r.status_code == 202 for r in responses), {r.status_code for r in responses}
    return [r.json()["number"] for r in responses]


async def _stored(base_url: str, token: str, chat: int) -> list[int]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get(
            f"/applications/{token}/chats/{chat}/messages", params={"per_page": 1000}
        )
    return [message["number"] for message in response.json()]


async def _prepare(base_url: str) -> tuple[str, int]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        token = await new_application(client)
        return token, await new_chat(client, token)


async def test_concurrent_message_creates_get_1_to_n(chat_server: LiveServer) -> None:
    token, chat = await _prepare(chat_server.base_url)
    numbers = await _post_messages([chat_server.base_url], token, chat, CONCURRENT)
    assert sorted(numbers) == list(range(1, CONCURRENT + 1))
    assert await _stored(chat_server.base_url, token, chat) == list(range(1, CONCURRENT + 1))


async def test_concurrent_chat_creates_get_1_to_n(chat_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=chat_server.base_url, timeout=60) as client:
        token = await new_application(client)
        responses = await asyncio.gather(
            *(client.post(f"/applications/{token}/chats") for _ in range(50))
        )
        numbers = sorted(r.json()["number"] for r in responses)
        listed = (await client.get(f"/applications/{token}/chats")).json()
    assert numbers == list(range(1, 51))
    assert [chat["number"] for chat in listed] == numbers


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_web_processes_share_one_sequence(settings: Settings) -> None:
    if settings.is_sqlite or settings.redis_url is None:
        pytest.skip("needs JUNCTION_TEST_DATABASE_URL (PostgreSQL) and JUNCTION_TEST_REDIS_URL")
    with (
        start_live_server(settings, JUNCTION_RATE_LIMITS=GENEROUS_LIMITS) as first,
        start_live_server(settings, JUNCTION_RATE_LIMITS=GENEROUS_LIMITS) as second,
    ):
        token, chat = await _prepare(first.base_url)
        urls = [first.base_url, second.base_url]
        numbers = await _post_messages(urls, token, chat, CONCURRENT)
        assert sorted(numbers) == list(range(1, CONCURRENT + 1))
        assert await _stored(second.base_url, token, chat) == list(range(1, CONCURRENT + 1))


@pytest.mark.redis
async def test_a_redis_flush_never_reuses_a_number(client: httpx.AsyncClient) -> None:
    redis_url = os.environ.get("JUNCTION_TEST_REDIS_URL")
    if not redis_url:
        pytest.skip("needs JUNCTION_TEST_REDIS_URL")
    token = await new_application(client)
    chat = await new_chat(client, token)
    path = f"/applications/{token}/chats/{chat}/messages"
    numbers = []
    async with Redis.from_url(redis_url) as redis:
        for index in range(6):
            response = await client.post(path, json={"message": {"body": f"m{index}"}})
            numbers.append(response.json()["number"])
            if index % 2 == 0:
                await redis.flushdb()
        await redis.flushdb()
    numbers.append(await new_chat(client, token))
    assert numbers == [1, 2, 3, 4, 5, 6, 2]


@pytest.mark.redis
async def test_a_stale_redis_counter_is_raised_past_stored_numbers(
    client: httpx.AsyncClient,
) -> None:
    redis_url = os.environ.get("JUNCTION_TEST_REDIS_URL")
    if not redis_url:
        pytest.skip("needs JUNCTION_TEST_REDIS_URL")
    token = await new_application(client)
    chat = await new_chat(client, token)
    path = f"/applications/{token}/chats/{chat}/messages"
    for index in range(3):
        await client.post(path, json={"message": {"body": f"m{index}"}})
    async with Redis.from_url(redis_url) as redis:
        # As if Redis came back from an old snapshot: its counter is behind the database.
        keys = await redis.keys(f"junction:chat:{token}:{chat}:*")
        assert len(keys) == 1
        await redis.set(keys[0], 1)
    response = await client.post(path, json={"message": {"body": "after the rollback"}})
    assert response.status_code == 202
    assert response.json()["number"] == 4


@pytest.mark.redis
async def test_a_batch_takes_its_numbers_in_one_step_in_the_order_asked() -> None:
    redis_url = os.environ.get("JUNCTION_TEST_REDIS_URL")
    if not redis_url:
        pytest.skip("needs JUNCTION_TEST_REDIS_URL")
    async with Redis.from_url(redis_url) as redis:
        allocator = NumberAllocator(redis)
        seeded, fresh, missing = (f"junction:test:batch-numbers:{n}" for n in "abc")
        await redis.delete(seeded, fresh, missing)
        await redis.set(seeded, 5)
        await redis.set(fresh, 0)
        try:
            numbers = await allocator.allocate_many_if_seeded(
                [seeded, fresh, seeded, missing, seeded]
            )
            assert numbers == [6, 1, 7, None, 8]
            # A missing key stays missing: it must be seeded from the database first.
            assert await redis.exists(missing) == 0
            assert await allocator.allocate_many_if_seeded([]) == []
        finally:
            await redis.delete(seeded, fresh, missing)


async def test_without_redis_every_number_comes_from_the_database() -> None:
    assert await NumberAllocator(None).allocate_many_if_seeded(["a", "b"]) == [None, None]
