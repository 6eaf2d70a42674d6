"""Real worker processes on the test database: crashes, load, signals, NOTIFY."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from junction.platform.db import Database
from junction.platform.jobs import enqueue
from junction.platform.jobs.models import Job, JobState
from junction.settings import Settings
from tests.support.live import free_port
from tests.support.processes import exit_code, junction_process, started
from tests.support.queue import job, jobs_by_id
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow


async def _enqueue_records(database: Database, directory: Path, count: int, sleep: float) -> None:
    async with database.transaction() as session:
        for _ in range(count):
            await enqueue(session, "tests.record", {"dir": str(directory), "sleep": sleep})


def _runs(directory: Path, job_id: int, kind: str = "runs") -> list[str]:
    path = directory / f"{job_id}.{kind}"
    return path.read_text().splitlines() if path.exists() else []


async def _all_succeeded(database: Database) -> dict[int, Job] | None:
    jobs = await jobs_by_id(database)
    return jobs if all(j.state == "succeeded" for j in jobs.values()) else None


async def test_a_sigkilled_workers_job_runs_again_and_every_job_completes_once(
    job_settings: Settings, database: Database, tmp_path: Path
) -> None:
    await _enqueue_records(database, tmp_path, 20, sleep=0.3)
    with (
        junction_process(job_settings, "worker", "--concurrency", "3") as victim,
        junction_process(job_settings, "worker", "--concurrency", "3") as survivor,
    ):
        await started(victim, "worker started")
        await started(survivor, "worker started")

        async def victim_is_running_a_job() -> list[Job]:
            jobs = (await jobs_by_id(database)).values()
            return [
                j for j in jobs if j.state == "running" and f":{victim.pid}:" in (j.locked_by or "")
            ]

        interrupted = await eventually(victim_is_running_a_job)
        victim.popen.send_signal(signal.SIGKILL)
        jobs = await eventually(lambda: _all_succeeded(database), timeout=60)

    assert not (tmp_path / "violations").exists()
    for job_id in jobs:
        assert len(_runs(tmp_path, job_id, "done")) >= 1
    for lost in interrupted:
        rerun = jobs[lost.id]
        assert rerun.attempts >= 2
        assert rerun.errors[0]["type"] == "LeaseExpired"
        assert len(_runs(tmp_path, lost.id)) >= 2
        assert _runs(tmp_path, lost.id, "done")[-1] == str(survivor.pid)


async def test_two_workers_under_load_never_run_one_job_at_once(
    job_settings: Settings, database: Database, tmp_path: Path
) -> None:
    with (
        junction_process(job_settings, "worker", "--concurrency", "10") as first,
        junction_process(job_settings, "worker", "--concurrency", "10") as second,
    ):
        await started(first, "worker started")
        await started(second, "worker started")
        await _enqueue_records(database, tmp_path, 300, sleep=0)
        jobs = await eventually(lambda: _all_succeeded(database), timeout=60)
        first.popen.send_signal(signal.SIGTERM)
        second.popen.send_signal(signal.SIGTERM)
        assert await exit_code(first) == 0
        assert await exit_code(second) == 0
    assert not (tmp_path / "violations").exists()
    assert all(len(_runs(tmp_path, job_id)) == 1 for job_id in jobs)
    assert all(jobs[job_id].attempts == 1 for job_id in jobs)


async def test_a_workers_crash_releases_the_unique_key_of_its_job(
    job_settings: Settings, database: Database
) -> None:
    async with database.transaction() as session:
        held = await enqueue(
            session, "tests.sleep", {"seconds": 60}, unique_key="report", max_attempts=1
        )
    with junction_process(job_settings, "worker") as crashing:

        async def running() -> bool:
            return (await job(database, held.id)).state == "running"

        await eventually(running)
        crashing.popen.send_signal(signal.SIGKILL)
        assert await exit_code(crashing) == -signal.SIGKILL
    async with database.transaction() as session:
        assert not (await enqueue(session, "tests.sleep", unique_key="report")).created

    # Any worker or scheduler reaps the expired lease; the job had no attempt left.
    with junction_process(job_settings, "scheduler"):

        async def dead() -> bool:
            return (await job(database, held.id)).state == "dead"

        await eventually(dead)
    async with database.transaction() as session:
        again = await enqueue(session, "tests.noop", unique_key="report")
    assert again.created


async def test_sigterm_lets_the_running_job_finish_and_exits_cleanly(
    job_settings: Settings, database: Database
) -> None:
    async with database.transaction() as session:
        enqueued = await enqueue(session, "tests.sleep", {"seconds": 1})
    with junction_process(job_settings, "worker") as worker:

        async def running() -> bool:
            return (await job(database, enqueued.id)).state == "running"

        await eventually(running)
        worker.popen.send_signal(signal.SIGTERM)
        assert await exit_code(worker) == 0
    finished = await job(database, enqueued.id)
    assert (finished.state, finished.result) == ("succeeded", "slept")


async def test_sigterm_releases_a_job_longer_than_the_grace_period(
    job_settings: Settings, database: Database
) -> None:
    async with database.transaction() as session:
        enqueued = await enqueue(session, "tests.sleep", {"seconds": 60})
    with junction_process(job_settings, "worker", JUNCTION_SHUTDOWN_GRACE_SECONDS="0.5") as w:

        async def running() -> bool:
            return (await job(database, enqueued.id)).state == "running"

        await eventually(running)
        w.popen.send_signal(signal.SIGTERM)
        assert await exit_code(w) == 0
    released = await job(database, enqueued.id)
    assert (released.state, released.locked_by, released.attempts) == ("queued", None, 0)


async def test_notify_wakes_a_worker_in_another_process(
    job_settings: Settings, database: Database
) -> None:
    if job_settings.is_sqlite:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite workers in other processes poll")
    # With a 10-minute poll, only NOTIFY can start the job before the deadline.
    with junction_process(job_settings, "worker", JUNCTION_JOB_POLL_SECONDS="600") as worker:
        await started(worker, "worker started")
        await asyncio.sleep(1)  # past its first look at the queue: now it is asleep
        async with database.transaction() as session:
            enqueued = await enqueue(session, "tests.echo", "ping")

        async def done() -> bool:
            return (await job(database, enqueued.id)).state == "succeeded"

        await eventually(done, timeout=30)


async def test_a_separate_worker_serves_its_job_metrics(
    job_settings: Settings, database: Database
) -> None:
    port = free_port()
    with junction_process(job_settings, "worker", "--metrics-port", str(port)) as worker:
        await started(worker, "worker started")
        async with database.transaction() as session:
            done = await enqueue(session, "tests.noop")
        await eventually(lambda: _succeeded(database, done.id), what="the job to succeed")
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    assert 'junction_job_runs_total{job="tests.noop",outcome="succeeded"} 1.0' in metrics


async def _succeeded(database: Database, job_id: int) -> bool:
    return (await job(database, job_id)).state == JobState.succeeded.value
