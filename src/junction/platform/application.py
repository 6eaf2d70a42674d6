"""The ASGI application Junction serves: FastAPI, behind two layers of Junction's own.

FastAPI builds its middleware stack as its error middleware, its telemetry and body-limit
layers, the middleware added with ``add_middleware``, its exception middleware, then the
router. ``Application`` puts two layers in front of all of them:

- the request context (``platform.middleware``): request id, access log, metrics and body
  guards, outermost so that every answer, FastAPI's own 500 included, carries the request
  id and is logged and counted once;
- the direct routes (``platform.direct_routes``): a hot route's valid requests answered
  without FastAPI's layers, whose cost per request was more than a tenth of a chat
  message create's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from junction.platform.direct_routes import DirectRoute, DirectRoutes


class Application(FastAPI):
    def __init__(self, request_context: Callable[[ASGIApp], ASGIApp], **options: Any) -> None:
        super().__init__(**options)
        self.request_context = request_context
        self.direct_routes: list[DirectRoute] = []

    def build_middleware_stack(self) -> ASGIApp:
        fastapi_stack = super().build_middleware_stack()
        return self.request_context(DirectRoutes(fastapi_stack, self.direct_routes))
