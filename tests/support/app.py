"""Running Junction's app in the test's own process."""

from __future__ import annotations

from asgi_lifespan import LifespanManager
from fastapi import FastAPI


def running(app: FastAPI) -> LifespanManager:
    """The app's lifespan, with time limits generous enough for a loaded CI machine."""
    return LifespanManager(app, startup_timeout=30, shutdown_timeout=30)
