"""docs/security.md's access table against the app: a row for every route and a route for
every row, and each route answering as its row says."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount, WebSocketRoute

from junction.platform.auth import Scope
from junction.platform.db import Database
from junction.platform.jobs import enqueue, job_token
from junction.settings import Settings
from tests.support import jobs as _test_jobs  # noqa: F401  (registers tests.noop)
from tests.support.console import api_key

TABLE = Path(__file__).resolve().parents[2] / "docs" / "security.md"
ROW = re.compile(r"^\| (GET|POST|PUT|PATCH|DELETE|WS) \| `([^`]+)` \| (\w+) \|$")
SCOPES = {"read": Scope.read, "write": Scope.write, "sync": Scope.sync, "admin": Scope.admin}
# Path parameters filled with values that pass validation (the route may still answer 404).
VALUES = {
    "{job_id}": "1",
    "{user_id}": "1",
    "{key:path}": "uploads/2026/01/01/" + "0" * 32 + ".png",
    "{application_token}": "x",
    "{chat_number}": "1",
    "{number}": "1",
    "{run_id}": "1",
    "{action}": "retry",
    "{queue}": "default",
    "{name}": "x",
    "{integration}": "events",
    "{letter_id}": "1",
    "{how}": "dismiss",
    "{entry_id}": "1",
    "{path}": "console.css",
}
STREAMS = {"/api/v1/stream"}  # an endless answer: its row is checked for presence only


def table() -> dict[tuple[str, str], str]:
    rows = {}
    for line in TABLE.read_text().splitlines():
        if match := ROW.match(line):
            method, path, access = match.groups()
            rows[(method, path)] = access
    return rows


def routes(app: FastAPI) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.router.routes):
        inner = getattr(route, "route", route)
        path = str(route.path)
        methods = set(getattr(route, "methods", None) or ())
        if isinstance(inner, WebSocketRoute) or path == "/cable":
            found.add(("WS", path))
        elif isinstance(inner, Mount) or not methods:
            found.add(("GET", path + "/{path}"))
        else:
            found.update((method, path) for method in methods - {"HEAD"})
    return found


def url(path: str) -> str:
    for name, value in VALUES.items():
        path = path.replace(name, value)
    return path


def test_every_route_has_a_row_and_every_row_a_route(app: FastAPI) -> None:
    rows, actual = set(table()), routes(app)
    assert actual - rows == set(), "routes missing from docs/security.md"
    assert rows - actual == set(), "rows of docs/security.md naming no route"


def other_scope(needed: str) -> Scope:
    return Scope.read if needed in ("write", "sync", "admin") else Scope.write


@pytest.mark.parametrize(("method", "path", "access"), [(*k, v) for k, v in table().items()])
async def test_the_route_answers_as_its_row_says(
    client: httpx.AsyncClient, database: Database, method: str, path: str, access: str
) -> None:
    if method == "WS" or path in STREAMS:
        return  # the channels authorise each subscription (tests/platform/realtime)
    target = url(path)

    async def answer(*scopes: Scope) -> httpx.Response:
        # From the site itself: the console's login refuses a cross-site POST.
        headers = {"Origin": str(client.base_url).rstrip("/")}
        if scopes:
            headers["Authorization"] = f"Bearer {await api_key(database, *scopes)}"
        return await client.request(method, target, headers=headers)

    async def call(*scopes: Scope) -> int:
        return (await answer(*scopes)).status_code

    if access == "public":
        # Nothing asked for: no 403, and no 401 challenging for a key (the console's login
        # answers 401 to a wrong key, which is the route working, not guarding).
        public = await answer()
        assert public.status_code != 403
        assert "www-authenticate" not in public.headers
    elif access in SCOPES:
        assert await call() == 401
        assert await call(other_scope(access)) == 403
        assert await call(SCOPES[access]) not in (401, 403)
    elif access == "console":
        refused = await client.request(method, target)
        assert refused.status_code == (303 if method == "GET" else 401)
        if method == "GET":
            assert refused.headers["location"].startswith("/console/login")
    elif access == "signature":
        assert await call(Scope.admin) == 403  # a key is no signature
    elif access == "token":
        await assert_token_route(client, database)
    else:
        pytest.fail(f"unknown access {access!r} for {method} {path}")


async def assert_token_route(client: httpx.AsyncClient, database: Database) -> None:
    async with database.transaction() as session:
        job_id = (await enqueue(session, "tests.noop", None)).id
    settings: Settings = client._transport.app.state.settings  # type: ignore[attr-defined]
    token = job_token(settings.secret_key.get_secret_value(), job_id)
    assert (await client.get(f"/api/v1/jobs/{job_id}")).status_code == 401
    assert (await client.get(f"/api/v1/jobs/{job_id}", params={"token": token})).status_code == 200
    assert (
        await client.get(f"/api/v1/jobs/{job_id}", params={"token": "forged"})
    ).status_code == 404
