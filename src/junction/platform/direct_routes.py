"""Direct routes: the well-formed requests of a hot route answered before FastAPI's handling.

FastAPI's work per request (matching the path against every route in turn, solving the
dependency graph, validating and serializing through the response model) was about half
of the server's CPU for a chat message create, more than the database and Redis work it
leads to (py-spy under ``bench/chat_messages.py``). A ``DirectRoute`` stands first in
the app's routes for one path and method. Its ``answer(request, body)`` serves the
requests it recognises as valid and returns ``None`` for every other one, which then goes,
body included, to the rest of the routes: the FastAPI route of the same path validates it
and refuses it with its usual messages. So FastAPI keeps the route's declaration, its
OpenAPI description and every error answer; the direct answer only has to recognise the
valid case and do what the route's endpoint does. Errors it raises (``JunctionError``)
reach the app's exception handlers as a route's would.

It is the split of ``platform.http_cache``'s cached reads, applied to a write: the common
case answered cheaply, everything else by the full machinery.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

DirectAnswer = Callable[[Request, bytes], Awaitable[Response | None]]
"""A response for a request it can serve itself; None hands the request to the routes."""

_DECLINED = "junction.direct_route.declined"


class DirectRoute(Route):
    def __init__(self, path: str, method: str, answer: DirectAnswer) -> None:
        super().__init__(path, answer, methods=[method], include_in_schema=False)
        self.answer = answer
        self.method = method
        # The route's ASGI app: this, not Starlette's wrapping of ``answer`` as an endpoint.
        self.app = self._serve

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # Only a full match: a request with another method, or one this route declined,
        # goes on to the other routes, never to this one as a partial match.
        if scope.get("method") != self.method or scope.get(_DECLINED):
            return Match.NONE, {}
        match, child_scope = super().matches(scope)
        # As FastAPI's routes do, for the access log's and the metrics' route template.
        return match, {**child_scope, "route": self}

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            body = await request.body()
        except ClientDisconnect:
            return  # gone, or already refused for its size (``platform.middleware``)
        response = await self.answer(request, body)
        if response is not None:
            await response(scope, receive, send)
            return
        scope[_DECLINED] = True
        await scope["router"](scope, _replaying(body, receive), send)


def install_direct_routes(app: FastAPI, routes: Iterable[DirectRoute]) -> None:
    """Put ``routes`` first: they are matched before any other route."""
    app.router.routes[0:0] = list(routes)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The body already read, then the connection's own messages (a disconnect)."""
    replayed = False

    async def receive_again() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_again
