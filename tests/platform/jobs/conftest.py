"""Fixtures of the job tests: short leases, a database handle, worker processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import pytest
from sqlalchemy import select

import tests.support.jobs  # noqa: F401  (registers the test handlers in this process too)
from junction.platform.db import Database
from junction.platform.jobs.models import Job
from junction.settings import Settings
from tests.support.live import environment_for

FAST_JOBS = {
    "job_lease_seconds": 2.0,
    "job_heartbeat_seconds": 0.3,
    "job_poll_seconds": 0.2,
    "shutdown_grace_seconds": 5.0,
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The job tests load the test handlers only, not the domains' jobs."""
    return settings.model_copy(update={"job_modules": ["tests.support.jobs"]})


@pytest.fixture
def job_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={**FAST_JOBS, "job_modules": ["tests.support.jobs"]})


@pytest.fixture
async def database(job_settings: Settings) -> AsyncIterator[Database]:
    database = Database(job_settings)
    yield database
    await database.dispose()


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 30.0, what: str = "condition"
) -> Any:
    """Wait for ``check`` to return something truthy; a deadline, not a speed assertion."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.05)


async def jobs_by_id(database: Database) -> dict[int, Job]:
    async with database.reading() as session:
        return {job.id: job for job in (await session.scalars(select(Job))).all()}


async def job(database: Database, job_id: int) -> Job:
    async with database.reading() as session:
        found = await session.get(Job, job_id)
    assert found is not None
    return found


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log_file: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def logs(self) -> str:
        self.log_file.flush()
        self.log_file.seek(0)
        return self.log_file.read().decode(errors="replace")


def process_environment(settings: Settings, **extra: str) -> dict[str, str]:
    fast = {
        "JUNCTION_JOB_MODULES": "tests.support.jobs",
        "JUNCTION_JOB_LEASE_SECONDS": str(FAST_JOBS["job_lease_seconds"]),
        "JUNCTION_JOB_HEARTBEAT_SECONDS": str(FAST_JOBS["job_heartbeat_seconds"]),
        "JUNCTION_JOB_POLL_SECONDS": str(FAST_JOBS["job_poll_seconds"]),
    }
    return environment_for(settings, **{**fast, **extra})


@contextmanager
def junction_process(settings: Settings, *args: str, **extra_env: str) -> Iterator[Process]:
    """``python -m junction <args>`` on the test database; killed if still running at the end."""
    with tempfile.TemporaryFile() as log_file:
        popen = subprocess.Popen(
            [sys.executable, "-m", "junction", *args],
            env=process_environment(settings, **extra_env),
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            yield Process(popen, log_file)
        finally:
            if popen.poll() is None:
                popen.kill()
            popen.wait(10)


async def started(process: Process, marker: str, timeout: float = 30.0) -> None:
    """Wait until the process logged ``marker`` (e.g. "worker started")."""

    async def logged() -> bool:
        if process.popen.poll() is not None:
            raise AssertionError(f"process exited early:\n{process.logs()}")
        return marker in process.logs()

    await eventually(logged, timeout, f"{marker!r} in the process log")


async def exit_code(process: Process, timeout: float = 30.0) -> int:
    async def exited() -> bool:
        return process.popen.poll() is not None

    await eventually(exited, timeout, "process exit")
    return int(process.popen.returncode)
