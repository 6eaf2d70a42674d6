"""Search: partial words, any case or accent, punctuation ignored, one chat, best first."""

from __future__ import annotations

import httpx
import pytest

from tests.support.chat import new_application, new_chat, new_message

BODIES = [
    "Hello, world!",
    "How are you?",
    "Hello again!",
    "Our café serves crème brûlée, voilà.",
    "ÉCOLE is French for school",
    "Naïve question: is the e-mail sent?",
]


@pytest.fixture
async def chat(client: httpx.AsyncClient) -> str:
    token = await new_application(client)
    await new_chat(client, token)
    for body in BODIES:
        await new_message(client, token, 1, body)
    return f"/applications/{token}/chats/1/messages/search"


async def _found(client: httpx.AsyncClient, path: str, q: str) -> list[int]:
    response = await client.get(path, params={"q": q})
    assert response.status_code == 200, response.text
    return sorted(message["number"] for message in response.json())


@pytest.mark.parametrize(
    ("q", "numbers"),
    [
        ("hel", [1, 3]),
        ("Hello", [1, 3]),
        ("HELLO", [1, 3]),
        ("hello!", [1, 3]),
        ("hel wor", [1]),
        ("world, hello", [1]),
        ("cafe", [4]),
        ("CAFÉ", [4]),
        ("creme brul", [4]),
        ("ecol", [5]),
        ("école", [5]),
        ("naive", [6]),
        ("e-mail", [6]),
        ("mai", [6]),
        ("xyz", []),
        ("ello", []),
    ],
)
async def test_partial_words_any_case_any_accent(
    client: httpx.AsyncClient, chat: str, q: str, numbers: list[int]
) -> None:
    assert await _found(client, chat, q) == numbers


async def test_the_seed_response_shape(client: httpx.AsyncClient, chat: str) -> None:
    found = (await client.get(chat, params={"q": "hello"})).json()
    assert [set(message) for message in found] == [{"number", "body", "created_at"}] * 2


async def test_search_is_scoped_to_its_chat(client: httpx.AsyncClient, chat: str) -> None:
    token = chat.split("/")[2]
    await new_chat(client, token)
    await new_message(client, token, 2, "Hello from the other chat")
    assert await _found(client, chat, "hello") == [1, 3]
    other = chat.replace("/chats/1/", "/chats/2/")
    assert await _found(client, other, "hello") == [1]


async def test_best_matches_first_then_pages(client: httpx.AsyncClient) -> None:
    token = await new_application(client)
    await new_chat(client, token)
    await new_message(client, token, 1, "hello and then a long sentence about other things")
    await new_message(client, token, 1, "hello hello hello")
    await new_message(client, token, 1, "nothing to see")
    path = f"/applications/{token}/chats/1/messages/search"
    found = (await client.get(path, params={"q": "hel"})).json()
    assert [message["number"] for message in found] == [2, 1]
    second_page = (await client.get(path, params={"q": "hel", "per_page": 1, "page": 2})).json()
    assert [message["number"] for message in second_page] == [1]


async def test_an_edit_is_searchable_at_once(client: httpx.AsyncClient, chat: str) -> None:
    token = chat.split("/")[2]
    edited = await client.patch(
        f"/applications/{token}/chats/1/messages/2", json={"message": {"body": "Zebras galore"}}
    )
    assert edited.status_code == 200
    assert await _found(client, chat, "zeb") == [2]
    assert await _found(client, chat, "how") == []


async def test_query_syntax_is_inert(client: httpx.AsyncClient, chat: str) -> None:
    for q in ('"hello', "hello OR how", "hel*", "NEAR(hello again)", "hello & !world", "'"):
        response = await client.get(chat, params={"q": q})
        assert response.status_code in (200, 422), (q, response.text)
    assert await _found(client, chat, "hello OR how") == []
