"""The routes of seed 001: shapes, status codes, errors, pagination."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.chat import keys_everywhere, new_application, new_chat, new_message

WIRE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_application_create_get_update(client: httpx.AsyncClient) -> None:
    created = await client.post("/applications", json={"application": {"name": "My App"}})
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"token", "name"}
    assert body["name"] == "My App"
    assert re.fullmatch(r"[0-9a-f]{40}", body["token"])
    token = body["token"]

    shown = (await client.get(f"/applications/{token}")).json()
    assert set(shown) == {"token", "name", "chats_count", "created_at"}
    assert shown["chats_count"] == 0
    assert WIRE_TIME.match(shown["created_at"])

    renamed = await client.patch(
        f"/applications/{token}", json={"application": {"name": "Updated Name"}}
    )
    assert renamed.status_code == 200
    assert renamed.json() == {**shown, "name": "Updated Name"}


async def test_a_wrong_method_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    token = (await client.post("/applications", json={"application": {"name": "A"}})).json()
    put = await client.put(f"/applications/{token['token']}", json={})
    messages = await client.delete(f"/applications/{token['token']}/chats/1/messages")

    assert put.status_code == 405
    assert put.json() == {"errors": ["Method Not Allowed"]}
    assert put.headers["allow"] == "GET, PATCH"
    assert messages.status_code == 405
    assert messages.headers["allow"] == "GET, POST"


async def test_tokens_differ(client: httpx.AsyncClient) -> None:
    tokens = {await new_application(client) for _ in range(5)}
    assert len(tokens) == 5


async def test_chat_and_message_lifecycle(client: httpx.AsyncClient) -> None:
    token = await new_application(client)
    accepted = await client.post(f"/applications/{token}/chats")
    assert accepted.status_code == 202
    assert set(accepted.json()) == {"job_id", "number"}
    assert accepted.json()["number"] == 1
    assert await new_chat(client, token) == 2

    chat = (await client.get(f"/applications/{token}/chats/1")).json()
    assert set(chat) == {"number", "messages_count", "created_at"}
    assert [c["number"] for c in (await client.get(f"/applications/{token}/chats")).json()] == [
        1,
        2,
    ]

    posted = await client.post(
        f"/applications/{token}/chats/1/messages", json={"message": {"body": "Hello, world!"}}
    )
    assert posted.status_code == 202
    assert posted.json()["number"] == 1
    # The message is committed before the 202: readable at once.
    message = (await client.get(f"/applications/{token}/chats/1/messages/1")).json()
    assert set(message) == {"number", "body", "created_at"}
    assert message["body"] == "Hello, world!"

    edited = await client.patch(
        f"/applications/{token}/chats/1/messages/1",
        json={"message": {"body": "Updated message text"}},
    )
    assert edited.status_code == 200
    assert edited.json() == {**message, "body": "Updated message text"}
    listed = (await client.get(f"/applications/{token}/chats/1/messages")).json()
    assert listed == [edited.json()]


async def test_job_of_a_create_is_readable_with_its_location(client: httpx.AsyncClient) -> None:
    token = await new_application(client)
    accepted = await client.post(f"/applications/{token}/chats")
    job = await client.get(accepted.headers["Location"])
    assert job.status_code == 200
    assert job.json()["id"] == int(accepted.json()["job_id"])
    assert job.json()["name"] == "chat.refresh_counts"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/applications/nope", None),
        ("PATCH", "/applications/nope", {"application": {"name": "x"}}),
        ("POST", "/applications/nope/chats", None),
        ("GET", "/applications/nope/chats", None),
        ("GET", "/applications/{token}/chats/9", None),
        ("GET", "/applications/{token}/chats/9/messages", None),
        ("POST", "/applications/{token}/chats/9/messages", {"message": {"body": "x"}}),
        ("GET", "/applications/{token}/chats/1/messages/9", None),
        ("PATCH", "/applications/{token}/chats/1/messages/9", {"message": {"body": "x"}}),
        ("GET", "/applications/{token}/chats/9/messages/search?q=x", None),
    ],
)
async def test_unknown_things_are_404_in_the_error_shape(
    client: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    token = await new_application(client)
    await new_chat(client, token)
    response = await client.request(method, path.format(token=token), json=body)
    assert response.status_code == 404
    assert list(response.json()) == ["errors"]
    assert response.json()["errors"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/applications", None),
        ("POST", "/applications", {}),
        ("POST", "/applications", {"application": {}}),
        ("POST", "/applications", {"application": {"name": "   "}}),
        ("POST", "/applications", {"application": {"name": "x" * 201}}),
        ("PATCH", "/applications/{token}", {"application": {"name": ""}}),
        ("POST", "/applications/{token}/chats/1/messages", None),
        ("POST", "/applications/{token}/chats/1/messages", {"message": {"body": ""}}),
        ("POST", "/applications/{token}/chats/1/messages", {"message": {"body": 5}}),
        ("POST", "/applications/{token}/chats/1/messages", {"message": {"body": "x" * 10_001}}),
        ("PATCH", "/applications/{token}/chats/1/messages/1", {"message": {}}),
        ("GET", "/applications/{token}/chats?page=0", None),
        ("GET", "/applications/{token}/chats?per_page=1001", None),
        ("GET", "/applications/{token}/chats/1/messages?page=abc", None),
        ("GET", "/applications/{token}/chats/0", None),
        ("GET", "/applications/{token}/chats/99999999999", None),
        ("GET", "/applications/{token}/chats/1/messages/search", None),
        ("GET", "/applications/{token}/chats/1/messages/search?q=", None),
        ("GET", "/applications/{token}/chats/1/messages/search?q=%20!?", None),
        ("GET", "/applications/{token}/chats/1/messages/search?q=" + "a" * 201, None),
    ],
)
async def test_bad_input_is_422_in_the_error_shape(
    client: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    token = await new_application(client)
    await new_chat(client, token)
    await new_message(client, token, 1, "Hello")
    response = await client.request(method, path.format(token=token), json=body)
    assert response.status_code == 422, response.text
    assert list(response.json()) == ["errors"]


async def test_pages_keep_the_plain_array(client: httpx.AsyncClient) -> None:
    token = await new_application(client)
    await new_chat(client, token)
    for index in range(5):
        await new_message(client, token, 1, f"message {index}")
    path = f"/applications/{token}/chats/1/messages"
    first = await client.get(path, params={"per_page": 2})
    assert [m["number"] for m in first.json()] == [1, 2]
    assert 'rel="next"' in first.headers["Link"]
    following = await client.get(first.headers["Link"].split(">")[0].lstrip("<"))
    assert [m["number"] for m in following.json()] == [3, 4]
    last = await client.get(path, params={"per_page": 2, "page": 3})
    assert [m["number"] for m in last.json()] == [5]
    assert "Link" not in last.headers
    assert (await client.get(path, params={"page": 9})).json() == []


async def test_no_internal_id_in_any_response(client: httpx.AsyncClient) -> None:
    token = await new_application(client)
    await new_chat(client, token)
    await new_message(client, token, 1, "Hello there")
    paths = [
        f"/applications/{token}",
        f"/applications/{token}/chats",
        f"/applications/{token}/chats/1",
        f"/applications/{token}/chats/1/messages",
        f"/applications/{token}/chats/1/messages/1",
        f"/applications/{token}/chats/1/messages/search?q=hel",
    ]
    documents = [(await client.get(path)).json() for path in paths]
    documents.append((await client.post(f"/applications/{token}/chats")).json())
    keys = set().union(*(keys_everywhere(d) for d in documents))
    assert keys == {"token", "name", "chats_count", "created_at", "number", "messages_count"} | {
        "body",
        "job_id",
    }
    assert not any(k == "id" or (k.endswith("_id") and k != "job_id") for k in keys)
