"""Real servers for the live-channel tests (see ``tests/support/realtime.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI

from junction.app import create_app
from junction.settings import Settings
from tests.support.realtime import RunningServer, ServeFactory, serving


@pytest.fixture
def websocket_protocol() -> str | None:
    """The uvicorn WebSocket protocol to serve with; None is ``junction serve``'s own.

    A test module overrides this fixture to run its tests under other protocols too.
    """
    return None


@pytest.fixture
def serve(settings: Settings, websocket_protocol: str | None) -> ServeFactory:
    """``async with serve(realtime_send_queue_size=8) as server: ...``"""

    @asynccontextmanager
    async def running(
        prepare: Callable[[FastAPI], None] = lambda app: None, **overrides: Any
    ) -> AsyncIterator[RunningServer]:
        overrides.setdefault("realtime_ping_interval_seconds", 0.2)
        app = create_app(settings.model_copy(update=overrides))
        prepare(app)
        async with serving(app, ws=websocket_protocol) as server:
            yield server

    return running
