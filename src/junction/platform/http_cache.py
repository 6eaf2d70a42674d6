"""Cached JSON answers with ETags, and hits served before routing.

A route that caches its answers stores each as an *entry* (``entry_of``: the ETag, then
the body) and answers through ``cached_answer``, which sets ETag, Cache-Control and
``X-Cache`` and turns a matching ``If-None-Match`` into a 304.

A public GET route may also be given to the middleware as a ``CachedRead``: its path, its
cache namespace and a function that turns the raw query into the cache suffix the route
itself would use, or ``None`` for parameters it would refuse. ``CachedReadsMiddleware``
then answers a hit for that path from the cache; a miss, or parameters the function
declines, go on to the router unchanged, which validates, builds and stores.

Django's FetchFromCacheMiddleware does the same, for the same reason: on a warm cache,
FastAPI's routing and parameter parsing were about three quarters of a request's CPU
(py-spy under ``bench/events_api.py``). It is written here because it is a dictionary
lookup and one response; ASGI caching packages key whole responses by URL and cannot
share the routes' own keys, versions and invalidation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from junction.platform.cache import Cache, record_lookup

SuffixOf = Callable[[Starlette, QueryParams], Awaitable[str | None]]


def etag_of(body: bytes) -> bytes:
    return b'"' + hashlib.blake2b(body, digest_size=16).hexdigest().encode() + b'"'


def entry_of(body: bytes) -> bytes:
    """What is cached for an answer: its ETag, a newline, then the body."""
    return etag_of(body) + b"\n" + body


def cached_answer(entry: bytes, hit: bool, max_age: int, if_none_match: str | None) -> Response:
    etag, _, body = entry.partition(b"\n")
    headers = {
        "ETag": etag.decode(),
        "Cache-Control": f"public, max-age={max_age}",
        "X-Cache": "hit" if hit else "miss",
    }
    if _matches(if_none_match, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


@dataclass(frozen=True)
class CachedRead:
    """A public GET route whose cached answers may be served before routing."""

    path: str
    namespace: str
    suffix_of: SuffixOf
    max_age_of: Callable[[Starlette], int]


class CachedReadsMiddleware:
    def __init__(self, app: ASGIApp, reads: Iterable[CachedRead]) -> None:
        self.app = app
        self.reads = {read.path: read for read in reads}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        read = self.reads.get(scope["path"]) if scope["type"] == "http" else None
        answered = (
            read is not None
            and scope["method"] == "GET"
            and await self._answered(read, scope, receive, send)
        )
        if not answered:
            await self.app(scope, receive, send)

    async def _answered(self, read: CachedRead, scope: Scope, receive: Receive, send: Send) -> bool:
        app: Starlette = scope["app"]
        suffix = await read.suffix_of(app, QueryParams(scope["query_string"]))
        if suffix is None:
            return False
        cache: Cache = app.state.cache
        entry = await cache.get(await cache.key(read.namespace, suffix))
        if entry is None:
            return False  # the route counts the miss when it builds the entry
        record_lookup(read.namespace, hit=True)
        scope["route"] = read  # names the route in the access log and metrics
        if_none_match = Headers(scope=scope).get("if-none-match")
        await cached_answer(entry, True, read.max_age_of(app), if_none_match)(scope, receive, send)
        return True
