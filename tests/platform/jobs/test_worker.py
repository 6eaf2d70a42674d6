"""The in-process worker: runs, retries, dead state, timeouts, wake-ups, graceful stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from junction.platform.db import Database, DbSession
from junction.platform.jobs import enqueue
from junction.platform.jobs.models import Job, JobState
from junction.platform.jobs.worker import Worker, parse_queues
from junction.settings import Settings
from tests.support.app import running
from tests.support.queue import job
from tests.support.waiting import eventually


@asynccontextmanager
async def running_worker(database: Database, settings: Settings) -> AsyncIterator[Worker]:
    worker = Worker(database, settings)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await task


def in_state(database: Database, job_id: int, *states: str) -> Callable[[], Awaitable[Job | None]]:
    async def check() -> Job | None:
        found = await job(database, job_id)
        return found if found.state in states else None

    return check


async def test_a_job_enqueued_in_process_runs_without_waiting_for_a_poll(
    job_settings: Settings, database: Database
) -> None:
    # A poll interval far longer than the deadline: only the after-commit wake-up can
    # (or NOTIFY on PostgreSQL) start the job in time.
    settings = job_settings.model_copy(update={"job_poll_seconds": 120.0})
    async with running_worker(database, settings):
        await asyncio.sleep(0.2)  # the worker is idle, waiting
        async with database.transaction() as session:
            enqueued = await enqueue(session, "tests.echo", {"hello": "world"})
        done = await eventually(in_state(database, enqueued.id, "succeeded"), timeout=20)
    assert done.result == {"hello": "world"}
    assert (done.attempts, done.locked_by) == (1, None)
    assert done.finished_at is not None


async def test_a_failing_job_is_retried_with_backoff_then_dead(
    job_settings: Settings, database: Database
) -> None:
    async with database.transaction() as session:
        enqueued = await enqueue(session, "tests.fail", unique_key="failing")
    async with running_worker(database, job_settings):
        dead = await eventually(in_state(database, enqueued.id, "dead"))
    assert dead.attempts == 3 == len(dead.errors)
    assert [e["message"] for e in dead.errors] == [f"failure on attempt {n}" for n in (1, 2, 3)]
    assert all(e["type"] == "ValueError" and "Traceback" in e["traceback"] for e in dead.errors)
    assert all(e["at"].endswith("Z") for e in dead.errors)
    async with database.transaction() as session:
        assert (await enqueue(session, "tests.fail", unique_key="failing")).created


async def test_a_job_over_its_timeout_fails(job_settings: Settings, database: Database) -> None:
    async with database.transaction() as session:
        enqueued = await enqueue(
            session, "tests.sleep", {"seconds": 30}, timeout_seconds=0.2, max_attempts=1
        )
    async with running_worker(database, job_settings):
        dead = await eventually(in_state(database, enqueued.id, "dead"))
    assert dead.errors[-1]["type"] == "TimeoutError"


async def test_queues_run_in_priority_order(job_settings: Settings, database: Database) -> None:
    async with database.transaction() as session:
        later = await enqueue(session, "tests.noop", queue="default")
        first = await enqueue(session, "tests.noop", queue="sync")
    settings = job_settings.model_copy(update={"job_queues": ["sync:1", "default:1"]})
    worker = Worker(database, settings, queues=parse_queues(["sync", "default"], 1))
    claimed = await worker._exchange(claiming=True)
    assert [(j.id, s.name) for j, s in claimed] == [(first.id, "sync"), (later.id, "default")]


async def test_stop_lets_a_running_job_finish(job_settings: Settings, database: Database) -> None:
    async with database.transaction() as session:
        enqueued = await enqueue(session, "tests.sleep", {"seconds": 0.5})
    async with running_worker(database, job_settings):
        await eventually(in_state(database, enqueued.id, "running"))
    assert (await job(database, enqueued.id)).state == JobState.succeeded.value


async def test_stop_releases_a_job_that_outlives_the_grace_period(
    job_settings: Settings, database: Database
) -> None:
    settings = job_settings.model_copy(update={"shutdown_grace_seconds": 0.2})
    async with database.transaction() as session:
        enqueued = await enqueue(session, "tests.sleep", {"seconds": 30})
    async with running_worker(database, settings):
        await eventually(in_state(database, enqueued.id, "running"))
    released = await job(database, enqueued.id)
    assert (released.state, released.attempts, released.locked_by) == ("queued", 0, None)


async def test_the_embedded_worker_runs_jobs_enqueued_by_a_request(
    job_settings: Settings,
) -> None:
    from junction.app import create_app

    settings = job_settings.model_copy(update={"run_embedded_worker": True})
    app: FastAPI = create_app(settings)

    @app.post("/test/jobs")
    async def add_job(session: DbSession) -> dict[str, int]:
        return {"id": (await enqueue(session, "tests.echo", [1, 2])).id}

    async with running(app):
        while not app.state.startup.migrated:
            await asyncio.sleep(0.01)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            job_id = (await client.post("/test/jobs")).json()["id"]
            database: Database = app.state.database
            done = await eventually(in_state(database, job_id, "succeeded"))
    assert done.result == [1, 2]
