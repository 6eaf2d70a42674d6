"""Hostile input against every route of a real `junction serve`: path parameters, query
parameters and JSON bodies that try traversal, numbers past 64 bits, invalid UTF-8, deep
nesting and sheer size; malformed and oversized headers; multipart abuse; clients that
send a byte at a time. Each is answered with a 4xx (in the error shape whenever Junction
itself answers), nothing is stored, and the server's memory stays bounded.

Requests the HTTP server refuses before Junction sees them (a malformed request line or
header) are answered by uvicorn itself, with a plain 400; those are checked for the status
and for the server going on serving.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from junction.app import create_app
from junction.chat.models import Application, Chat, Message
from junction.events import service as events_service
from junction.events.models import Event
from junction.platform.auth import Scope
from junction.platform.db import Database
from junction.platform.jobs.models import Job
from junction.profiles.models import User
from junction.settings import Settings
from tests.support.chat import GENEROUS_LIMITS
from tests.support.console import api_key
from tests.support.files import png_bytes
from tests.support.live import LiveServer, serving_in_thread, start_live_server

MiB = 1024 * 1024
# Streams that never end, and the console (HTML pages, tested in tests/console).
SKIPPED_PATHS = ("/api/v1/stream",)
PATH_VALUES = [
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e",
    "..",
    "99999999999999999999999999",
    "-9223372036854775809",
    "%FF%FE%FD",
    "%00",
    "%C0%AF",
    "x" * 5000,
    "1e400",
]
QUERY_VALUES = [
    "99999999999999999999999999",
    "-1",
    "x" * 10_000,
    "../../etc/passwd",
    "1e400",
    "NaN",
    "2026-99-99T99:99:99Z",
    "\x00",
]
NESTED = 100_000
ADA_JSON = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "date_of_birth": "1985-12-10",
}


def json_bodies() -> Iterator[tuple[str, bytes]]:
    yield "deeply nested arrays", b"[" * NESTED + b"]" * NESTED
    yield "deeply nested objects", b'{"a":' * NESTED + b"1" + b"}" * NESTED
    yield "invalid UTF-8", b'{"name": "\xff\xfe\xfd"}'
    yield "a number past 64 bits", b'{"application": {"name": 1' + b"0" * 400 + b"}}"
    yield "a float out of range", b'{"message": {"body": 1e400}}'
    yield "NaN", b'{"first_name": NaN}'
    yield "a lone surrogate", b'{"message": {"body": "\\udc80"}}'
    yield "a body over the limit", b'{"x": "' + b"a" * (2 * MiB) + b'"}'
    yield "not JSON", b"\x00\x01\x02 definitely not json"
    yield "an array instead of an object", b"[1, 2, 3]"


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with start_live_server(settings, JUNCTION_RATE_LIMITS=GENEROUS_LIMITS) as live:
        yield live


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    spec = create_app(Settings(job_modules=[])).openapi()
    return [
        (method.upper(), path, operation)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
        if path not in SKIPPED_PATHS
    ]


def path_params(operation: dict[str, Any]) -> list[str]:
    return [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]


def filled(path: str, operation: dict[str, Any], value: str) -> str:
    for name in path_params(operation):
        path = path.replace("{" + name + "}", value)
    return path


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# Seed 002 gives /search its own error shape, {"error": {"code", "message"}, "data": null},
# which its clients parse; it keeps it.
OWN_ERROR_SHAPE = ("/search",)


class Findings:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.sent = 0

    def check(self, what: str, response: httpx.Response) -> None:
        self.sent += 1
        if response.status_code >= 500:
            self.problems.append(f"{what}: {response.status_code} {response.text[:200]}")
        elif (
            response.status_code >= 400
            and response.headers.get("content-type", "").startswith("application/json")
            and response.request.url.path not in OWN_ERROR_SHAPE
        ):
            body = response.json()
            if not (isinstance(body, dict) and set(body) == {"errors"} and body["errors"]):
                self.problems.append(f"{what}: {response.status_code} not the error shape: {body}")


async def stored_rows(database: Database) -> dict[str, int]:
    """Rows a request could have made; jobs only those a key enqueued (the embedded
    scheduler enqueues its own)."""
    async with database.reading() as session:
        counts = {
            model.__name__: int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (User, Application, Chat, Message)
        }
        enqueued = select(func.count()).select_from(Job).where(Job.created_by.is_not(None))
        counts["Job"] = int(await session.scalar(enqueued) or 0)
    return counts


async def attack_client(server: LiveServer, database: Database) -> httpx.AsyncClient:
    key = await api_key(database, Scope.read, Scope.write, Scope.sync, Scope.admin)
    return httpx.AsyncClient(
        base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


async def test_hostile_path_query_and_body_values_on_every_route(
    server: LiveServer, database: Database
) -> None:
    findings = Findings()
    before = rss_kib(server.process.pid)
    async with await attack_client(server, database) as client:
        for method, path, operation in operations():
            has_body = "requestBody" in operation
            for value in PATH_VALUES if path_params(operation) else []:
                target = filled(path, operation, value)
                response = await client.request(method, target, json={} if has_body else None)
                findings.check(f"{method} {target[:120]}", response)
            if method == "GET":
                for param in [
                    p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
                ]:
                    target = filled(path, operation, "1")
                    for value in QUERY_VALUES:
                        response = await client.get(target, params={param: value})
                        findings.check(f"GET {target}?{param}={value[:40]!r}", response)
                    invalid_utf8 = await client.get(f"{target}?{param}=%FF%FE%00")
                    findings.check(f"GET {target}?{param}=%FF%FE%00", invalid_utf8)
            if has_body:
                for name, body in json_bodies():
                    target = filled(path, operation, "1")
                    response = await client.request(
                        method, target, content=body, headers={"Content-Type": "application/json"}
                    )
                    findings.check(f"{method} {target} with {name}", response)
                    if response.status_code < 400:
                        findings.problems.append(f"{method} {target} accepted {name}")
    after = rss_kib(server.process.pid)
    assert findings.problems == [], "\n".join(findings.problems)
    assert findings.sent > 500
    assert await stored_rows(database) == dict.fromkeys(
        ["User", "Application", "Chat", "Message", "Job"], 0
    )
    assert after - before < 64 * 1024, f"the server grew by {(after - before) // 1024} MiB"


def raw_exchange(server: LiveServer, request: bytes, timeout: float = 10) -> bytes:
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(request)
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and len(answer) > 12:
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return answer


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    return int(answer[9:12])


async def test_malformed_and_oversized_headers(server: LiveServer, database: Database) -> None:
    requests = {
        "a header of 100 KB": b"GET /up HTTP/1.1\r\nHost: x\r\nX-Big: "
        + b"a" * 100_000
        + b"\r\n\r\n",
        "2,000 headers": b"GET /up HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % n for n in range(2000))
        + b"\r\n",
        "a control byte in a header name": b"GET /up HTTP/1.1\r\nHost: x\r\nX-B\x01d: v\r\n\r\n",
        "a header without a colon": b"GET /up HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n",
        "a garbage request line": b"\x16\x03\x01\x02\x00 nonsense\r\n\r\n",
        "a negative Content-Length": b"POST /applications HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: -5\r\n\r\n",
        "two Content-Lengths": b"POST /applications HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Content-Length: 40\r\nContent-Type: application/json\r\n\r\n{}",
        "a request line of 100 KB": b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    }
    for name, request in requests.items():
        answer = await asyncio.to_thread(raw_exchange, server, request)
        status = status_of(answer)
        assert 400 <= status < 500, f"{name}: {answer[:300]!r}"
    findings = Findings()
    async with await attack_client(server, database) as client:
        odd_headers: list[dict[bytes, bytes]] = [
            {b"Authorization": b"Bearer " + b"k" * 20_000},
            {b"Authorization": b"Bearer jk_\xc3\xa9\xff_x"},
            {b"Content-Type": b"application/json; charset=" + b"x" * 5000},
            {b"Content-Type": b"text/xml"},
            {b"X-Request-ID": b"\xff" * 300},
            {b"Accept": b"*/*;" * 2000},
        ]
        for headers in odd_headers:
            response = await client.post("/applications", content=b"{}", headers=headers)
            findings.check(f"POST /applications with {list(headers)}", response)
            assert response.status_code >= 400
        assert (await client.get("/up")).status_code == 200
    assert findings.problems == [], "\n".join(findings.problems)
    assert (await stored_rows(database))["Application"] == 0


async def test_multipart_abuse(server: LiveServer, database: Database) -> None:
    findings = Findings()
    boundary = "hostile"

    def multipart(parts: list[bytes]) -> tuple[bytes, dict[str, str]]:
        body = b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts)
        return body + f"--{boundary}--\r\n".encode(), {
            "Content-Type": f"multipart/form-data; boundary={boundary}"
        }

    field = b'Content-Disposition: form-data; name="first_name"\r\n\r\nAda'
    cases = {
        "10,000 parts": multipart([field] * 10_000),
        "a part header of 200 KB": multipart(
            [
                b'Content-Disposition: form-data; name="x"; filename="'
                + b"a" * 200_000
                + b'"\r\n\r\nv'
            ]
        ),
        "a polyglot (PNG bytes declared a PDF)": multipart(
            [
                b'Content-Disposition: form-data; name="first_name"\r\n\r\nAda',
                b'Content-Disposition: form-data; name="last_name"\r\n\r\nL',
                b'Content-Disposition: form-data; name="email"\r\n\r\nada@example.com',
                b'Content-Disposition: form-data; name="date_of_birth"\r\n\r\n1985-12-10',
                b'Content-Disposition: form-data; name="file"; filename="cv.pdf"\r\n'
                b"Content-Type: application/pdf\r\n\r\n" + png_bytes() + b"%PDF-1.4 trailer",
            ]
        ),
        "a file named with a path": multipart(
            [
                b'Content-Disposition: form-data; name="file"; filename="../../../etc/passwd"\r\n'
                b"Content-Type: image/png\r\n\r\n" + png_bytes()
            ]
        ),
        "no closing boundary": (
            f"--{boundary}\r\n".encode() + field,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        ),
        "no boundary at all": (field, {"Content-Type": "multipart/form-data"}),
    }
    async with await attack_client(server, database) as client:
        for name, (body, headers) in cases.items():
            response = await client.post("/api/v1/users", content=body, headers=headers)
            findings.check(f"POST /api/v1/users with {name}", response)
            assert 400 <= response.status_code < 500, (
                name,
                response.status_code,
                response.text[:200],
            )
    assert findings.problems == [], "\n".join(findings.problems)
    assert (await stored_rows(database))["User"] == 0


def slow_client(server: LiveServer, stop_at: float) -> int:
    """Sends a request one byte every half second until ``stop_at``; returns bytes sent."""
    host, port = server.base_url.removeprefix("http://").split(":")
    request = b"POST /applications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    sent = 0
    try:
        with socket.create_connection((host, int(port)), timeout=5) as connection:
            while time.monotonic() < stop_at:
                connection.sendall(request[sent % len(request) : sent % len(request) + 1])
                sent += 1
                time.sleep(0.5)
    except OSError:
        pass  # the server may close a connection that takes this long
    return sent


async def test_clients_sending_a_byte_at_a_time_do_not_starve_others(server: LiveServer) -> None:
    stop_at = time.monotonic() + 6
    slow = [asyncio.to_thread(slow_client, server, stop_at) for _ in range(60)]
    slow_clients = asyncio.gather(*slow)
    await asyncio.sleep(1)
    waits = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        for _ in range(40):
            started = time.perf_counter()
            response = await client.get("/ready")  # the database and Redis, every time
            waits.append(time.perf_counter() - started)
            assert response.status_code == 200
            await asyncio.sleep(0.05)
    await slow_clients
    waits.sort()
    median, worst = waits[len(waits) // 2] * 1000, waits[-1] * 1000
    print(f"with 60 slow clients: median {median:.1f} ms, worst {worst:.1f} ms")


@functools.cache
def gzip_bomb() -> bytes:
    """64 KiB that inflate to 64 MiB."""
    return gzip.compress(b"<" * (64 * MiB))


def hostile_provider() -> Starlette:
    """A provider whose feed is an attack, chosen by the path."""
    documents = {
        "laughs": b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(
            b'<!ENTITY a%d "%s">' % (n, b"&a;" * 10 if n == 1 else b"&a%d;" % (n - 1) * 10)
            for n in range(1, 9)
        )
        + b']><eventList><output><base_event base_event_id="1" title="&a8;"/></output></eventList>',
        "external-entity": b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY s SYSTEM "file:///etc/passwd">]>'
        b'<eventList><output><base_event base_event_id="1" title="&s;"/></output></eventList>',
        "external-dtd": b'<?xml version="1.0"?><!DOCTYPE e SYSTEM "http://127.0.0.1:9/x.dtd">'
        b"<eventList><output/></eventList>",
    }

    async def feed(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind == "gzip-bomb":
            return Response(
                gzip_bomb(), media_type="application/xml", headers={"Content-Encoding": "gzip"}
            )
        return Response(documents[kind], media_type="application/xml")

    return Starlette(routes=[Route("/{kind}", feed)])


@pytest.mark.parametrize("kind", ["laughs", "external-entity", "external-dtd", "gzip-bomb"])
async def test_xml_attacks_in_the_provider_feed_fail_the_run_and_store_nothing(
    settings: Settings, database: Database, kind: str
) -> None:
    with serving_in_thread(hostile_provider(), "hostile provider") as provider:
        attacked = settings.model_copy(update={"provider_url": f"{provider}/{kind}"})
        run = await events_service.run_sync(database, attacked, "test")
    assert run.status == "failed"
    assert run.errors, run
    async with database.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Event)) == 0


async def test_a_nul_character_in_text_is_never_a_server_error(
    server: LiveServer, database: Database
) -> None:
    """PostgreSQL cannot store NUL in text; SQLite can. Either way, no 5xx."""
    async with await attack_client(server, database) as client:
        created = await client.post("/applications", json={"application": {"name": "ok"}})
        token = created.json()["token"]
        chat = (await client.post(f"/applications/{token}/chats")).json()["number"]
        answers = [
            await client.post("/applications", json={"application": {"name": "a\u0000b"}}),
            await client.post(
                f"/applications/{token}/chats/{chat}/messages",
                json={"message": {"body": "x\u0000y"}},
            ),
            await client.post("/api/v1/users", json={**ADA_JSON, "first_name": "A\u0000"}),
        ]
    assert [a.status_code for a in answers if a.status_code >= 500] == []
