"""Direct routes: the well-formed requests of a hot route answered before FastAPI's handling.

FastAPI's work per request (its own middleware layers, matching the path against every
route in turn, solving the dependency graph, validating and serializing through the
response model) was about half of the server's CPU for a chat message create, more than
the database and Redis work it leads to (py-spy under ``bench/chat_messages.py``).

A ``DirectRoute`` names one path and method. The ``DirectRoutes`` layer stands between
the request context (``platform.middleware``) and FastAPI's own layers
(``platform.application``). The route's ``answer(request, body)`` serves the requests it
recognises as valid and returns ``None`` for every other one, which then goes, body
included, through FastAPI's layers to its routes: the FastAPI route of the same path
validates it and refuses it with its usual messages. So FastAPI keeps the route's
declaration, its OpenAPI description and every error answer; the direct answer only has
to recognise the valid case and do what the route's endpoint does. A ``JunctionError`` it
raises is answered in the error shape, as the app's handler answers it.

It is the split of ``platform.http_cache``'s cached reads, applied to a write: the common
case answered cheaply, everything else by the full machinery.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from junction.platform.errors import JunctionError, junction_error_response

DirectAnswer = Callable[[Request, bytes], Awaitable[Response | None]]
"""A response for a request it can serve itself; None hands the request to FastAPI."""


class DirectRoute(Route):
    """``answer`` for ``method`` requests to ``path``, a route template as FastAPI's.

    A Starlette route for its path matching and its ``path_format``, under which the
    access log and the metrics count its requests.
    """

    def __init__(self, path: str, method: str, answer: DirectAnswer) -> None:
        super().__init__(path, answer, methods=[method], include_in_schema=False)
        self.answer = answer


class DirectRoutes:
    """The ASGI layer answering ``routes`` before ``app``, FastAPI's own layers."""

    def __init__(self, app: ASGIApp, routes: Sequence[DirectRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    await self._serve(route, child_scope, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(
        self, route: DirectRoute, child_scope: Scope, scope: Scope, receive: Receive, send: Send
    ) -> None:
        # In place, as Starlette's router does: the request context reads the route after.
        scope.update(child_scope, route=route)
        request = Request(scope, receive)
        try:
            body = await request.body()
        except ClientDisconnect:
            return  # gone, or already refused for its size (``platform.middleware``)
        try:
            response = await route.answer(request, body)
        except JunctionError as exc:
            response = junction_error_response(exc)
        if response is not None:
            await response(scope, receive, send)
            return
        for key in (*child_scope, "route"):
            del scope[key]
        await self.app(scope, _replaying(body, receive), send)


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
