"""Pruning: finished jobs go after their retention, a job name's own or the default."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from junction.platform.db import Database, utcnow
from junction.platform.jobs import enqueue
from junction.platform.jobs.maintenance import PRUNE_JOB, prune_finished_jobs
from junction.platform.jobs.models import Job
from junction.platform.jobs.registry import JobContext, registry
from junction.settings import Settings


async def _finished(database: Database, name: str, state: str, ago: timedelta) -> int:
    async with database.transaction() as session:
        job_id = (await enqueue(session, name, {})).id
        finished_at = utcnow() - ago
        await session.execute(
            update(Job).where(Job.id == job_id).values(state=state, finished_at=finished_at)
        )
    return job_id


async def _remaining(database: Database) -> set[int]:
    async with database.reading() as session:
        return set((await session.scalars(select(Job.id))).all())


async def test_finished_jobs_are_pruned_after_their_own_retention_or_the_default(
    job_settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = job_settings.model_copy(update={"job_retention_days": 7.0})
    monkeypatch.setitem(
        registry.jobs,
        "tests.echo",
        replace(registry.jobs["tests.echo"], retention=timedelta(hours=1)),
    )
    monkeypatch.setitem(
        registry.jobs,
        "tests.record",
        replace(registry.jobs["tests.record"], retention=timedelta(days=30)),
    )
    day, hour = timedelta(days=1), timedelta(hours=1)
    pruned = {
        await _finished(database, "tests.noop", "succeeded", 8 * day),
        await _finished(database, "tests.echo", "succeeded", 2 * hour),
        await _finished(database, "tests.echo", "discarded", 2 * hour),
        await _finished(database, "tests.record", "succeeded", 31 * day),
    }
    kept = {
        await _finished(database, "tests.noop", "succeeded", 2 * day),
        await _finished(database, "tests.noop", "dead", 30 * day),  # waits for an operator
        await _finished(database, "tests.echo", "succeeded", timedelta(minutes=10)),
        await _finished(database, "tests.echo", "dead", 2 * hour),
        await _finished(database, "tests.record", "succeeded", 8 * day),
    }
    async with database.transaction() as session:
        kept.add((await enqueue(session, "tests.echo", {})).id)  # queued

    context = JobContext(0, PRUNE_JOB, None, 1, 3, database, settings)
    result = await prune_finished_jobs(context)

    assert result == {"deleted": len(pruned)}
    assert await _remaining(database) == kept


def test_a_retention_must_be_positive() -> None:
    with pytest.raises(ValueError, match="retention"):
        registry.job("tests.never_registered", retention=timedelta(0))
