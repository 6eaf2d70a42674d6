"""Action Cable protocol details on ``/cable``, with a plain WebSocket client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect

from junction.platform.auth import Scope
from junction.platform.realtime import (
    Channel,
    SubscriptionRejected,
    SubscriptionRequest,
    register_channel,
)
from tests.support.realtime import ServeFactory, cable_client

USER_UPDATES = '{"channel":"UserUpdatesChannel"}'


class ChatLikeChannel(Channel):
    """Stands in for the chat domain's channel: authorised by an identifier param."""

    name = "TestChatChannel"

    async def streams(self, request: SubscriptionRequest) -> Sequence[str]:
        if request.params.get("application_token") != "tok-1":
            raise SubscriptionRejected("unknown application")
        return [f"chat:tok-1:{int(request.params['chat_number'])}"]


def with_chat_channel(app: FastAPI) -> None:
    register_channel(app, ChatLikeChannel())


async def test_welcome_subprotocol_and_pings(serve: ServeFactory) -> None:
    async with serve() as server, cable_client(server.cable_url) as client:
        assert client.websocket.subprotocol == "actioncable-v1-json"
        assert await client.next_frame() == {"type": "welcome"}
        ping = await client.next_frame(skip_pings=False)
        assert ping["type"] == "ping"
        assert isinstance(ping["message"], int)


async def test_identifier_is_echoed_byte_for_byte(serve: ServeFactory) -> None:
    identifier = '{ "chat_number": 3,  "application_token":"tok-1", "channel":"TestChatChannel" }'
    async with serve(with_chat_channel) as server, cable_client(server.cable_url) as client:
        await client.next_frame()
        await client.send("subscribe", identifier)
        confirmation = await client.next_frame()
        assert confirmation == {"identifier": identifier, "type": "confirm_subscription"}
        await server.broker.publish("chat:tok-1:3", {"type": "message_created", "number": 1})
        frame = await client.next_frame()
    assert frame == {"identifier": identifier, "message": {"type": "message_created", "number": 1}}


async def test_a_registered_channel_authorises_by_its_params(serve: ServeFactory) -> None:
    wrong = json.dumps(
        {"channel": "TestChatChannel", "application_token": "nope", "chat_number": 1}
    )
    async with serve(with_chat_channel) as server, cable_client(server.cable_url) as client:
        await client.next_frame()
        assert await client.subscribe(wrong) == {"identifier": wrong, "type": "reject_subscription"}
        unknown = '{"channel":"NoSuchChannel"}'
        assert (await client.subscribe(unknown))["type"] == "reject_subscription"
        assert (await client.subscribe("not json"))["type"] == "reject_subscription"


async def test_duplicate_subscribe_is_harmless(serve: ServeFactory) -> None:
    async with serve() as server, cable_client(server.cable_url) as client:
        await client.next_frame()
        for _ in range(3):
            await client.send("subscribe", USER_UPDATES)
        assert await client.next_frame() == {
            "identifier": USER_UPDATES,
            "type": "confirm_subscription",
        }
        await server.broker.publish("user_updates", {"n": 1})
        await server.broker.publish("user_updates", {"n": 2})
        frames = [await client.next_frame(), await client.next_frame()]
    assert [f["message"] for f in frames] == [{"n": 1}, {"n": 2}]


async def test_unsubscribe_stops_broadcasts(serve: ServeFactory) -> None:
    async with serve() as server, cable_client(server.cable_url) as client:
        await client.next_frame()
        await client.subscribe(USER_UPDATES)
        await client.send("unsubscribe", USER_UPDATES)
        await client.send("message", USER_UPDATES, data='{"action":"speak"}')
        # Commands are handled in order: once this is answered, the unsubscribe is done.
        await client.subscribe('{"channel":"JobsChannel"}')
        await server.broker.publish("user_updates", {"n": 1})
        # Frames arrive in order: had {"n": 1} been sent, it would come before this.
        assert (await client.subscribe(USER_UPDATES))["type"] == "confirm_subscription"
        await server.broker.publish("user_updates", {"n": 2})
        frame = await client.next_frame()
    assert frame["message"] == {"n": 2}


async def test_private_channels_need_a_key_with_the_scope(serve: ServeFactory) -> None:
    async with serve() as server:
        read_key = await server.api_key(Scope.read)
        admin_key = await server.api_key(Scope.admin)
        jobs, sync = '{"channel":"JobsChannel"}', '{"channel":"SyncStatusChannel"}'
        async with cable_client(f"{server.cable_url}?api_key={read_key}") as client:
            await client.next_frame()
            assert (await client.subscribe(sync))["type"] == "confirm_subscription"
            assert (await client.subscribe(jobs))["type"] == "reject_subscription"
        headers = {"Authorization": f"Bearer {admin_key}"}
        async with cable_client(server.cable_url, additional_headers=headers) as client:
            await client.next_frame()
            assert (await client.subscribe(jobs))["type"] == "confirm_subscription"


async def test_an_invalid_key_is_refused_without_reconnect(serve: ServeFactory) -> None:
    async with serve() as server, cable_client(f"{server.cable_url}?api_key=jk_x_y") as client:
        assert await client.next_frame() == {
            "type": "disconnect",
            "reason": "unauthorized",
            "reconnect": False,
        }


async def test_connections_beyond_the_limit_are_told_to_come_back(serve: ServeFactory) -> None:
    async with serve(realtime_max_connections=1) as server, cable_client(server.cable_url) as first:
        assert await first.next_frame() == {"type": "welcome"}
        async with cable_client(server.cable_url) as second:
            assert await second.next_frame() == {
                "type": "disconnect",
                "reason": "too_many_connections",
                "reconnect": True,
            }
        assert (await first.subscribe(USER_UPDATES))["type"] == "confirm_subscription"


async def test_metrics_count_connections_subscriptions_and_messages(serve: ServeFactory) -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    sent_before = value("junction_realtime_messages_sent_total", transport="cable")
    async with serve() as server, cable_client(server.cable_url) as client:
        await client.next_frame()
        await client.subscribe(USER_UPDATES)
        assert value("junction_realtime_connections", transport="cable") >= 1
        assert value("junction_realtime_subscriptions", channel="UserUpdatesChannel") >= 1
        await server.broker.publish("user_updates", {"n": 1})
        await client.next_frame()
        async with connect(server.base_url.replace("http", "ws") + "/cable") as plain:
            # No subprotocol offered: still served, with none chosen.
            assert plain.subprotocol is None
            assert json.loads(await plain.recv()) == {"type": "welcome"}
    await asyncio.sleep(0)
    assert value("junction_realtime_messages_sent_total", transport="cable") == sent_before + 1


@pytest.mark.parametrize("command", ['{"command":"subscribe"}', "[]", "nonsense"])
async def test_malformed_commands_do_not_end_the_connection(
    serve: ServeFactory, command: str
) -> None:
    async with serve() as server, cable_client(server.cable_url) as client:
        await client.next_frame()
        await client.websocket.send(command)
        assert (await client.subscribe(USER_UPDATES))["type"] == "confirm_subscription"
