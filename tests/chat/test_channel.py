"""``ChatChannel``: messages created and edited over HTTP reach a live chat's subscribers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from junction.app import create_app
from junction.chat import service
from junction.chat.numbering import NumberAllocator
from junction.settings import Settings
from tests.platform.realtime.test_sse import event_stream
from tests.support.chat import keys_everywhere, new_application, new_chat, new_message
from tests.support.realtime import CableClient, RunningServer, cable_client, serving


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[RunningServer]:
    """Served in the test's event loop, so a test can also write through the app's database."""
    async with serving(create_app(settings)) as running:
        yield running


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        yield client


def chat_identifier(token: str, chat_number: Any) -> str:
    return json.dumps(
        {"channel": "ChatChannel", "application_token": token, "chat_number": chat_number}
    )


async def subscribed_client(client: CableClient, identifier: str) -> None:
    assert await client.next_frame() == {"type": "welcome"}
    confirmation = await client.subscribe(identifier)
    assert confirmation == {"identifier": identifier, "type": "confirm_subscription"}


async def test_created_and_edited_messages_arrive(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    token = await new_application(http)
    chat = await new_chat(http, token)
    identifier = chat_identifier(token, chat)
    async with cable_client(server.cable_url) as client:
        await subscribed_client(client, identifier)
        number = await new_message(http, token, chat, "Hello, live world")
        created = await client.next_frame()
        edit = await http.patch(
            f"/applications/{token}/chats/{chat}/messages/{number}",
            json={"message": {"body": "Hello, edited world"}},
        )
        assert edit.status_code == 200, edit.text
        updated = await client.next_frame()
    stored = (await http.get(f"/applications/{token}/chats/{chat}/messages/{number}")).json()
    assert created == {
        "identifier": identifier,
        "message": {
            "type": "message_created",
            "message": {
                "number": number,
                "body": "Hello, live world",
                "created_at": stored["created_at"],
            },
        },
    }
    assert updated["message"] == {"type": "message_updated", "message": stored}
    assert stored["body"] == "Hello, edited world"
    assert not keys_everywhere(created) & {"id", "chat_id", "application_id"}


async def create_then_fail(server: RunningServer, token: str, chat: int) -> None:
    """The service's create, in a transaction that then fails and rolls back."""
    app = server.app
    async with app.state.database.transaction() as session:
        allocator = NumberAllocator(app.state.redis)
        await service.create_message(
            session, allocator, server.broker, token, chat, "never committed"
        )
        raise RuntimeError("the request fails after the insert")


async def test_a_rolled_back_create_sends_nothing(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    token = await new_application(http)
    chat = await new_chat(http, token)
    async with cable_client(server.cable_url) as client:
        await subscribed_client(client, chat_identifier(token, chat))
        with pytest.raises(RuntimeError, match="the request fails"):
            await create_then_fail(server, token, chat)
        await new_message(http, token, chat, "committed")
        frame = await client.next_frame()
    # Broadcasts of one chat arrive in order: had the rolled-back create been sent, it
    # would have come first.
    assert frame["message"]["type"] == "message_created"
    assert frame["message"]["message"]["body"] == "committed"


async def test_a_chat_of_another_token_or_none_is_rejected(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    token = await new_application(http)
    chat = await new_chat(http, token)
    other_token = await new_application(http, "Other App")
    refused = [
        chat_identifier("0" * 40, chat),
        chat_identifier(other_token, chat),
        chat_identifier(token, chat + 1),
        chat_identifier(token, str(chat)),
        json.dumps({"channel": "ChatChannel", "chat_number": chat}),
    ]
    async with cable_client(server.cable_url) as client:
        assert await client.next_frame() == {"type": "welcome"}
        for identifier in refused:
            answer = await client.subscribe(identifier)
            assert answer == {"identifier": identifier, "type": "reject_subscription"}


async def test_server_sent_events_carry_the_chat(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    token = await new_application(http)
    chat = await new_chat(http, token)
    identifier = chat_identifier(token, chat)
    async with event_stream(server.base_url, channels=identifier) as events:
        await events.subscribed()
        number = await new_message(http, token, chat, "Over SSE")
        event = await events.next_event()
    message = json.loads(event["data"])["message"]
    assert message["type"] == "message_created"
    assert message["message"]["number"] == number
    assert message["message"]["body"] == "Over SSE"
    wrong = await http.get("/api/v1/stream", params={"channels": chat_identifier("nope", chat)})
    assert wrong.status_code == 403
    assert wrong.json()["errors"]
