"""A sync in a real worker process, killed mid-run: what landed is consistent, and the next
run (the job, reclaimed once its lease expires) completes it."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import pytest
from sqlalchemy import select

from junction.emulators.wellness import Mode, WellnessEmulator
from junction.platform.db import Database
from junction.platform.integrations import IntegrationRun
from junction.platform.jobs.models import Job
from junction.settings import Settings
from junction.wellness.models import Appointment, SyncKind
from junction.wellness.service import trigger_sync
from tests.support.live import environment_for
from tests.support.waiting import eventually
from tests.support.wellness import API_KEY, count, lease_holder_of, runs, state_of

pytestmark = pytest.mark.slow


@contextmanager
def worker_process(settings: Settings) -> Iterator[tuple[subprocess.Popen[bytes], IO[bytes]]]:
    env = environment_for(
        settings,
        JUNCTION_WELLNESS_API_URL=str(settings.wellness_api_url),
        JUNCTION_WELLNESS_API_KEY=API_KEY,
        JUNCTION_WELLNESS_PAGE_SIZE="10",
        JUNCTION_WELLNESS_SYNC_LEASE_SECONDS="2",
        JUNCTION_WELLNESS_API_BACKOFF_SECONDS="0.01",
        JUNCTION_JOB_LEASE_SECONDS="2",
        JUNCTION_JOB_HEARTBEAT_SECONDS="0.3",
        JUNCTION_JOB_POLL_SECONDS="0.2",
    )
    with tempfile.TemporaryFile() as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "junction", "worker", "--queues", "sync"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            yield process, log_file
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(10)


async def test_a_worker_killed_mid_sync_leaves_a_consistent_state_and_the_next_run_completes(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    emulator.set_mode(Mode("slow", delay=0.25))
    async with database.transaction() as session:
        job = await trigger_sync(session, SyncKind.appointments, trigger="manual")

    async def some_pages_landed() -> bool:
        history = await runs(database)
        return bool(history) and history[0].fetched >= 30

    with worker_process(settings) as (process, _):
        await eventually(some_pages_landed, timeout=60, what="three pages landing")
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    [interrupted] = await runs(database)
    landed = await count(database, Appointment)
    assert interrupted.status == "running"
    assert 30 <= landed < 100
    assert landed == interrupted.created  # every committed page is counted, nothing more
    state = await state_of(database, SyncKind.appointments)
    assert state is not None
    assert state.cursor is None  # never saved ahead of the data

    emulator.set_mode(Mode())

    async def job_done() -> bool:
        async with database.reading() as session:
            found = await session.get(Job, job.id, populate_existing=True)
        return found is not None and found.state == "succeeded"

    with worker_process(settings) as (_, log_file):
        try:
            await eventually(job_done, timeout=60, what="the reclaimed job succeeding")
        except AssertionError:
            log_file.seek(0)
            raise AssertionError(log_file.read().decode(errors="replace")) from None

    first, second = await runs(database)
    assert first.status == "failed"
    assert first.error is not None
    assert "interrupted" in first.error
    assert second.status == "succeeded"
    assert (second.created, second.unchanged) == (100 - landed, landed)
    assert await count(database, Appointment, deleted_at=None) == 100
    async with database.reading() as session:
        starts = set((await session.scalars(select(Appointment.external_id))).all())
        assert len(starts) == 100
        jobs = (await session.scalars(select(Job))).all()
        assert [j.id for j in jobs] == [job.id]
    done = await state_of(database, SyncKind.appointments)
    assert done is not None
    assert done.cursor is not None
    assert await lease_holder_of(database, SyncKind.appointments) is None
    assert second.cursor_to == done.cursor
    assert isinstance(second, IntegrationRun)
