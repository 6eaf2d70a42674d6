"""``python -m junction`` processes (workers, schedulers) on the test database, with short
job leases, and waits on what they log and how they exit."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from junction.settings import Settings
from tests.support.live import environment_for
from tests.support.waiting import eventually

FAST_JOBS = {
    "job_lease_seconds": 2.0,
    "job_heartbeat_seconds": 0.3,
    "job_poll_seconds": 0.2,
    "shutdown_grace_seconds": 5.0,
}


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

    await eventually(logged, timeout=timeout, what=f"{marker!r} in the process log")


async def exit_code(process: Process, timeout: float = 30.0) -> int:
    async def exited() -> bool:
        return process.popen.poll() is not None

    await eventually(exited, timeout=timeout, what="process exit")
    return int(process.popen.returncode)
