"""The app factory: the one place, with the job registry, that names every domain."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.telemetry import TelemetryConfig

from junction.chat import api as chat_api
from junction.chat import models as chat_models
from junction.chat import seed_data as chat_seed_data
from junction.chat.channels import ChatChannel
from junction.console import models as console_models
from junction.console.api import install_console
from junction.emulators.served import emulator_mounts
from junction.events import api as events_api
from junction.events import models as events_models
from junction.platform import auth
from junction.platform.application import Application
from junction.platform.cache import open_cache
from junction.platform.db import Base, Database
from junction.platform.docs import install_docs
from junction.platform.errors import install_error_handlers
from junction.platform.first_start import FirstStartRecord, FirstStartStep, run_first_start_steps
from junction.platform.health import StartupState
from junction.platform.health import router as health_router
from junction.platform.http_cache import CachedReadsMiddleware
from junction.platform.integrations import DeadLetter, IntegrationRun, Lease, SyncStatusChannel
from junction.platform.integrations.metrics import INTEGRATION_HEALTH
from junction.platform.jobs import api as jobs_api
from junction.platform.jobs.metrics import JOB_STATS
from junction.platform.jobs.models import Job, JobMinute, JobQueue, Schedule
from junction.platform.jobs.registry import load_job_modules
from junction.platform.jobs.runtime import JobRuntime
from junction.platform.logging import configure_logging
from junction.platform.memory import freeze_startup_objects
from junction.platform.metrics import refresh_forever
from junction.platform.middleware import RequestContextMiddleware
from junction.platform.migrations import wait_for_schema
from junction.platform.ratelimit import RateLimiter
from junction.platform.realtime import install_realtime, register_channel, running_realtime
from junction.platform.redis_pool import open_redis
from junction.platform.storage import install_storage, open_storage
from junction.profiles import api as profiles_api
from junction.profiles import models as profiles_models
from junction.profiles import service as profiles_service
from junction.profiles.channels import UserUpdatesChannel
from junction.settings import Settings, get_settings
from junction.wellness import api as wellness_api
from junction.wellness import models as wellness_models
from junction.wellness.metrics import WELLNESS_SYNC_STATS

log = structlog.get_logger(__name__)

# Every model, so that Base.metadata (which Alembic compares against) knows each table.
MODELS = (
    auth.ApiKey,
    Job,
    Schedule,
    JobQueue,
    JobMinute,
    console_models.AuditEntry,
    FirstStartRecord,
    profiles_models.User,
    chat_models.Application,
    chat_models.Chat,
    chat_models.Message,
    events_models.Event,
    events_models.Slot,
    events_models.Zone,
    wellness_models.Client,
    wellness_models.Appointment,
    wellness_models.SyncState,
    IntegrationRun,
    DeadLetter,
    Lease,
)
# The domains' job handlers and schedules, loaded by every process that runs or enqueues jobs.
JOB_MODULES = (
    "junction.profiles.jobs",
    "junction.chat.jobs",
    "junction.events.jobs",
    "junction.wellness.jobs",
    "junction.console.jobs",
)
# Run once per database after the migrations (`junction migrate`, `junction serve`).
FIRST_START_STEPS = (
    FirstStartStep(
        "chat.sample_data",
        chat_seed_data.seed_on_first_start,
        wanted=lambda settings: settings.loads_sample_data,
    ),
    FirstStartStep(
        "profiles.demo_user",
        profiles_service.create_demo_user,
        wanted=lambda settings: settings.demo,
    ),
)
metadata = Base.metadata

API_DESCRIPTION = """
Junction: user profiles with files and Airtable sync, a multi-tenant chat API, a ticketing
provider feed and a wellness sync, on one platform of durable jobs, live channels, cache,
storage, search, metrics, API keys and rate limits.

Errors always have the shape `{"errors": ["message", ...]}`.
"""


NO_OPENTELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


def create_app(settings: Settings | None = None) -> Application:
    settings = settings or get_settings()
    configure_logging(settings)
    request_context = partial(
        RequestContextMiddleware,
        max_body_bytes=settings.max_request_body_bytes,
        upload_paths=re.compile(profiles_api.UPLOAD_PATHS),
        max_upload_bytes=settings.upload_max_bytes,
    )
    app = Application(
        request_context,
        title="Junction",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
        # Metrics and logs are Junction's own (Prometheus, structlog). FastAPI's built-in
        # OpenTelemetry, unused, would still look for providers on every request.
        telemetry=NO_OPENTELEMETRY,
    )
    app.state.settings = settings
    app.add_middleware(CachedReadsMiddleware, reads=events_api.CACHED_READS)
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match", "X-Request-ID"],
            expose_headers=["ETag", "Location", "Retry-After", "X-Request-ID"],
            max_age=settings.cors_max_age_seconds,
        )
    install_error_handlers(app)
    install_docs(app)
    app.include_router(health_router)
    install_realtime(app)
    install_storage(app)
    app.include_router(jobs_api.router)
    app.include_router(profiles_api.router)
    app.include_router(chat_api.router)
    register_channel(app, ChatChannel())
    register_channel(app, SyncStatusChannel())
    register_channel(app, UserUpdatesChannel())
    app.direct_routes.extend(chat_api.DIRECT_ROUTES)
    app.include_router(events_api.router)
    app.include_router(wellness_api.router)
    install_console(app)
    if settings.demo:
        for path, emulator in emulator_mounts().items():
            app.mount(path, emulator)
    load_job_modules((*JOB_MODULES, *settings.job_modules))
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    database = Database(settings)
    app.state.database = database
    app.state.redis = open_redis(settings)
    app.state.rate_limiter = RateLimiter(
        settings.rate_limits, app.state.redis, settings.redis_retry_seconds
    )
    app.state.cache = open_cache(settings)
    app.state.storage = open_storage(settings)
    app.state.startup = StartupState()
    app.state.jobs = None
    try:
        async with running_realtime(app):
            background = [
                asyncio.create_task(_prepare_database(app)),
                *(
                    asyncio.create_task(
                        refresh_forever(
                            name,
                            partial(stats.refresh, database),
                            settings.job_metrics_refresh_seconds,
                        )
                    )
                    for name, stats in (
                        ("jobs", JOB_STATS),
                        ("integrations", INTEGRATION_HEALTH),
                        ("wellness", WELLNESS_SYNC_STATS),
                    )
                ),
                asyncio.create_task(events_api.data_version_watcher(app).refresh_forever()),
            ]
            freeze_startup_objects()
            try:
                yield
            finally:
                await _stop(background)
                if app.state.jobs is not None:
                    # Running jobs get the grace period, then go back to the queue; they
                    # may still broadcast, so this happens before the broker closes.
                    await app.state.jobs.shutdown()
    finally:
        await app.state.storage.close()
        await app.state.cache.close()
        if app.state.redis is not None:
            await app.state.redis.aclose()
        await database.dispose()


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _prepare_database(app: FastAPI) -> None:
    """Wait for the database with backoff, then migrate (or, with ``migrate_on_start``
    off, wait for the migrate step): /ready stays 503 until the schema is current."""
    settings: Settings = app.state.settings
    startup: StartupState = app.state.startup
    database: Database = app.state.database
    try:
        await database.wait_until_reachable(settings.database_startup_attempts)
        startup.database_reachable = True
        await wait_for_schema(settings, database)
        if settings.migrate_on_start:
            log.info("migrations applied")
            await run_first_start_steps(database, settings, FIRST_START_STEPS)
        startup.migrated = True
        if settings.run_embedded_worker:
            app.state.jobs = JobRuntime(
                database,
                settings,
                broker=app.state.broker,
                cache=app.state.cache,
                redis=app.state.redis,
            )
            app.state.jobs.start()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("database preparation failed; readiness stays false")
