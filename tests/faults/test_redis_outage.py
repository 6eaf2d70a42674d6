"""Redis stopped under load and started again: no 5xx, numbering falls back to the database
without handing out a number twice, and a live client connected all along gets the
broadcasts again once Redis is back (two web processes, so broadcasts cross Redis)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from junction.platform.db import Database
from tests.support.chat import new_application, new_chat
from tests.support.faults import (
    Answers,
    create_messages,
    fault_settings,
    junction_on,
    stored_numbers,
)
from tests.support.realtime import CableClient, cable_client
from tests.support.servers import private_postgres, private_redis

LOAD_SECONDS = 12.0
STOP_AFTER = 3.0
DOWN_FOR = 4.0


async def frame_with_body(client: CableClient, body: str, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frame = await client.next_frame(timeout=deadline - time.monotonic())
        except TimeoutError:
            return False
        message = frame.get("message")
        if isinstance(message, dict) and message.get("message", {}).get("body") == body:
            return True
    return False


async def test_a_redis_outage_under_load_answers_no_5xx_and_live_clients_recover() -> None:
    with private_postgres() as postgres, private_redis() as redis:
        settings = await fault_settings(postgres, redis)
        database = Database(settings)
        try:
            with junction_on(settings) as writer, junction_on(settings) as listener:
                async with httpx.AsyncClient(base_url=writer.base_url, timeout=20) as client:
                    token = await new_application(client)
                    chat = await new_chat(client, token)
                    identifier = json.dumps(
                        {"channel": "ChatChannel", "application_token": token, "chat_number": chat}
                    )
                    cable_url = listener.base_url.replace("http://", "ws://") + "/cable"
                    async with cable_client(cable_url) as live:
                        assert await live.next_frame() == {"type": "welcome"}
                        assert (await live.subscribe(identifier))["type"] == "confirm_subscription"
                        answers = Answers()
                        until = time.monotonic() + LOAD_SECONDS
                        load = asyncio.create_task(
                            create_messages(
                                [writer.base_url], token, chat, answers, until=until, concurrency=4
                            )
                        )
                        await asyncio.sleep(STOP_AFTER)
                        redis.stop()
                        await asyncio.sleep(DOWN_FOR)
                        redis.start()
                        await load
                        body = "after Redis came back"
                        resumed = False
                        for attempt in range(10):  # the listener resubscribes on its own
                            sent = await client.post(
                                f"/applications/{token}/chats/{chat}/messages",
                                json={"message": {"body": f"{body} {attempt}"}},
                            )
                            assert sent.status_code == 202, sent.text
                            if await frame_with_body(live, f"{body} {attempt}", timeout=3):
                                resumed = True
                                break
            stored = await stored_numbers(database, token, chat)
        finally:
            await database.dispose()
    assert answers.bad_shapes == []
    assert set(answers.statuses) == {202}, answers.statuses
    assert len(set(answers.acknowledged)) == len(answers.acknowledged)
    assert set(answers.acknowledged) <= set(stored)
    assert len(stored) == len(set(stored))
    assert resumed, "the live client got no broadcast after Redis came back"
