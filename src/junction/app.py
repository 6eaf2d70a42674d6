"""The app factory: the one place, with the job registry, that names every domain."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from redis.asyncio import Redis

from junction.platform import auth
from junction.platform.db import Base, Database
from junction.platform.docs import install_docs
from junction.platform.errors import install_error_handlers
from junction.platform.health import StartupState
from junction.platform.health import router as health_router
from junction.platform.logging import configure_logging
from junction.platform.middleware import RequestContextMiddleware
from junction.platform.migrations import upgrade_to_head
from junction.platform.ratelimit import RateLimiter
from junction.settings import Settings, get_settings

log = structlog.get_logger(__name__)

# Every model, so that Base.metadata (which Alembic compares against) knows each table.
MODELS = (auth.ApiKey,)
metadata = Base.metadata

API_DESCRIPTION = """
Junction: user profiles with files and Airtable sync, a multi-tenant chat API, a ticketing
provider feed and a wellness sync, on one platform of durable jobs, live channels, cache,
storage, search, metrics, API keys and rate limits.

Errors always have the shape `{"errors": ["message", ...]}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    app = FastAPI(
        title="Junction",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_request_body_bytes,
    )
    install_error_handlers(app)
    install_docs(app)
    app.include_router(health_router)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    database = Database(settings)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    app.state.database = database
    app.state.redis = Redis.from_url(redis_url) if redis_url else None
    app.state.rate_limiter = RateLimiter(settings.rate_limits, redis_url)
    app.state.startup = StartupState()
    preparing = asyncio.create_task(_prepare_database(app))
    try:
        yield
    finally:
        preparing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await preparing
        if app.state.redis is not None:
            await app.state.redis.aclose()
        await database.dispose()


async def _prepare_database(app: FastAPI) -> None:
    """Wait for the database with backoff, then migrate: /ready stays 503 until done."""
    settings: Settings = app.state.settings
    startup: StartupState = app.state.startup
    database: Database = app.state.database
    try:
        await database.wait_until_reachable(settings.database_startup_attempts)
        startup.database_reachable = True
        if settings.migrate_on_start:
            await asyncio.to_thread(upgrade_to_head, settings)
            log.info("migrations applied")
        startup.migrated = True
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("database preparation failed; readiness stays false")
