"""Message creates answered by the direct route look exactly as FastAPI's route answers them.

Valid creates skip FastAPI's request handling (``chat.api.create_message_directly``);
these tests send the same requests with and without that route and compare what a client
sees: status, body, and every header but the request id, the date and the job token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from junction.chat import api as chat_api
from junction.platform.application import Application
from junction.settings import Settings
from tests.support.chat import new_application, new_chat

CREATES_PER_MINUTE = 7  # one for the chat, then three pairs of messages
VARYING_HEADERS = {"x-request-id", "date", "location", "content-length"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    limits = {**settings.rate_limits, "chat_create": f"{CREATES_PER_MINUTE}/minute"}
    return settings.model_copy(update={"rate_limits": limits})


@pytest.fixture
async def token(client: httpx.AsyncClient) -> str:
    token = await new_application(client)
    await new_chat(client, token)
    return token


@contextmanager
def without_direct_routes(app: Application) -> Iterator[None]:
    direct = list(app.direct_routes)
    assert direct, "the app has no direct route to take away"
    app.direct_routes.clear()
    try:
        yield
    finally:
        app.direct_routes[:] = direct


def _seen(response: httpx.Response) -> tuple[int, object, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in VARYING_HEADERS}
    return response.status_code, response.json(), headers


async def _both_ways(
    client: httpx.AsyncClient, app: Application, path: str, body: bytes
) -> tuple[httpx.Response, httpx.Response]:
    headers = {"content-type": "application/json"}
    direct = await client.post(path, content=body, headers=headers)
    with without_direct_routes(app):
        routed = await client.post(path, content=body, headers=headers)
    return direct, routed


async def test_a_create_is_answered_directly_as_the_route_would(
    client: httpx.AsyncClient, started_app: Application, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered_directly = 0
    answer = chat_api.create_message_directly

    async def counted(*args: object) -> object:
        nonlocal answered_directly
        answered_directly += 1
        return await answer(*args)  # type: ignore[arg-type]

    for route in started_app.direct_routes:
        monkeypatch.setattr(route, "answer", counted)
    path = f"/applications/{token}/chats/1/messages"
    direct, routed = await _both_ways(
        client, started_app, path, b'{"message": {"body": "  Hello  "}}'
    )
    assert answered_directly == 1  # not for the second: the direct route was taken away
    assert direct.status_code == routed.status_code == 202
    assert (direct.json()["number"], routed.json()["number"]) == (1, 2)
    assert set(direct.json()) == set(routed.json()) == {"job_id", "number"}
    # Remaining and reset move with each create; the rest is equal, names and values.
    moving = {"x-ratelimit-remaining", "x-ratelimit-reset"}
    assert set(direct.headers) == set(routed.headers)
    assert {k: v for k, v in _seen(direct)[2].items() if k not in moving} == {
        k: v for k, v in _seen(routed)[2].items() if k not in moving
    }
    for response in (direct, routed):
        job_id = response.json()["job_id"]
        assert re.fullmatch(rf"/api/v1/jobs/{job_id}\?token=[\w-]+", response.headers["location"])
        job = await client.get(response.headers["location"])
        assert job.status_code == 200, job.text
    listed = (await client.get(path)).json()
    assert [(m["number"], m["body"]) for m in listed] == [(1, "Hello"), (2, "Hello")]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/applications/{token}/chats/1/messages", b'{"message": {"body": ""}}'),
        ("/applications/{token}/chats/1/messages", b'{"message": {"body": 5}}'),
        ("/applications/{token}/chats/1/messages", b'{"message": {}}'),
        ("/applications/{token}/chats/1/messages", b"[]"),
        ("/applications/{token}/chats/1/messages", b"{nope"),
        ("/applications/{token}/chats/1/messages", b""),
        ("/applications/{token}/chats/0/messages", b'{"message": {"body": "x"}}'),
        ("/applications/{token}/chats/2147483648/messages", b'{"message": {"body": "x"}}'),
        ("/applications/{token}/chats/\uff11/messages", b'{"message": {"body": "x"}}'),
        ("/applications/{token}/chats/9/messages", b'{"message": {"body": "x"}}'),
        ("/applications/nope/chats/1/messages", b'{"message": {"body": "x"}}'),
        ("/applications/" + "t" * 201 + "/chats/1/messages", b'{"message": {"body": "x"}}'),
    ],
)
async def test_refusals_are_the_routes_own(
    client: httpx.AsyncClient, started_app: Application, token: str, path: str, body: bytes
) -> None:
    direct, routed = await _both_ways(client, started_app, path.format(token=token), body)
    assert direct.status_code in (404, 422)
    assert _seen(direct)[:2] == _seen(routed)[:2]


async def test_the_rate_limit_refuses_as_the_route_does(
    client: httpx.AsyncClient, started_app: Application, token: str
) -> None:
    path = f"/applications/{token}/chats/1/messages"
    body = b'{"message": {"body": "x"}}'
    for _ in range((CREATES_PER_MINUTE - 1) // 2):
        direct, routed = await _both_ways(client, started_app, path, body)
        assert (direct.status_code, routed.status_code) == (202, 202)
        assert int(direct.headers["x-ratelimit-remaining"]) == (
            int(routed.headers["x-ratelimit-remaining"]) + 1
        )
    direct, routed = await _both_ways(client, started_app, path, body)
    assert direct.status_code == routed.status_code == 429
    assert _seen(direct)[1] == _seen(routed)[1]
    assert int(direct.headers["retry-after"]) >= 1
    assert int(routed.headers["retry-after"]) >= 1
