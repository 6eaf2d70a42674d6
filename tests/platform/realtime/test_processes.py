"""Live channels across real processes: shutdown, and two web processes sharing Redis."""

from __future__ import annotations

import asyncio
import json

import pytest

from junction.settings import Settings
from tests.platform.realtime.test_sse import event_stream
from tests.support.environment import TEST_REDIS_URL
from tests.support.live import LiveServer, start_live_server
from tests.support.realtime import ServeFactory, cable_client

USER_UPDATES = '{"channel":"UserUpdatesChannel"}'

pytestmark = pytest.mark.slow
needs_redis = pytest.mark.skipif(not TEST_REDIS_URL, reason="needs JUNCTION_TEST_REDIS_URL")


def _cable_url(server: LiveServer) -> str:
    return server.base_url.replace("http://", "ws://") + "/cable"


async def test_sigterm_tells_clients_to_reconnect(live_server: LiveServer) -> None:
    async with cable_client(_cable_url(live_server)) as client:
        await client.next_frame()
        assert (await client.subscribe(USER_UPDATES))["type"] == "confirm_subscription"
        await asyncio.to_thread(live_server.stop)
        frame = await client.next_frame()
    assert frame == {"type": "disconnect", "reason": "server_restart", "reconnect": True}


@pytest.mark.redis
@needs_redis
async def test_a_broadcast_in_one_web_process_reaches_clients_of_another(
    serve: ServeFactory, settings: Settings
) -> None:
    with start_live_server(settings) as other:
        async with serve() as here, cable_client(_cable_url(other)) as client:
            await client.next_frame()
            assert (await client.subscribe(USER_UPDATES))["type"] == "confirm_subscription"
            await here.broker.publish("user_updates", {"type": "new_user", "user": {"id": 1}})
            frame = await client.next_frame()
    assert frame == {"identifier": USER_UPDATES, "message": {"type": "new_user", "user": {"id": 1}}}


@pytest.mark.redis
@needs_redis
async def test_sse_resumes_on_another_web_process(serve: ServeFactory, settings: Settings) -> None:
    with start_live_server(settings) as other:
        async with serve() as here:
            ids = [await here.broker.publish("user_updates", {"n": n}) for n in range(3)]
            headers = {"Last-Event-ID": str(ids[0])}
            async with event_stream(
                other.base_url, headers=headers, channels="UserUpdatesChannel"
            ) as events:
                replayed = [await events.next_event() for _ in range(2)]
    assert [int(e["id"]) for e in replayed] == ids[1:]
    assert [json.loads(e["data"])["message"] for e in replayed] == [{"n": 1}, {"n": 2}]
