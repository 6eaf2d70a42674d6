"""Job handlers for the job system's tests, loaded by worker processes through
``JUNCTION_JOB_MODULES=tests.support.jobs``.

``tests.record`` leaves evidence on disk: one line per run in ``<dir>/<id>.runs``, and a
line in ``<dir>/violations`` whenever it finds another run of the same job in progress.
The check holds an exclusive ``flock`` for the whole run: the kernel drops the lock of a
killed process, so a SIGKILLed run never looks like a concurrent one.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Any

from junction.platform.jobs import Backoff, JobContext, registry


@registry.job("tests.noop")
async def noop(job: JobContext) -> None:
    return None


@registry.job("tests.echo")
async def echo(job: JobContext) -> Any:
    return job.payload


@registry.job("tests.record", max_attempts=5)
async def record(job: JobContext) -> dict[str, int]:
    directory = Path(job.payload["dir"])
    with (directory / f"{job.id}.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with (directory / "violations").open("a") as violations:
                violations.write(f"{job.id}\n")
            fcntl.flock(lock, fcntl.LOCK_EX)
        with (directory / f"{job.id}.runs").open("a") as runs:
            runs.write(f"{os.getpid()} {job.attempt}\n")
        await asyncio.sleep(float(job.payload.get("sleep", 0)))
        with (directory / f"{job.id}.done").open("a") as done:
            done.write(f"{os.getpid()}\n")
    return {"pid": os.getpid()}


@registry.job("tests.fail", max_attempts=3, backoff=Backoff(base_seconds=0.01, max_seconds=0.05))
async def fail(job: JobContext) -> None:
    raise ValueError(f"failure on attempt {job.attempt}")


@registry.job("tests.sleep", timeout_seconds=60)
async def sleep(job: JobContext) -> str:
    await asyncio.sleep(float(job.payload["seconds"]))
    return "slept"
