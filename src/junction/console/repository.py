"""The console's reads of the platform's tables: jobs by filter, queues, schedules,
integration runs and dead letters, and the audit log.

Pages are keyset-paged (``id < before``): the thousandth page costs what the first does.
The payload filter is a containment (``{"user_id": 42}`` matches every job whose payload
holds that pair): on PostgreSQL ``payload::jsonb @> ...``, answered by the GIN index the
console's migration adds; on SQLite ``json_extract`` per key, a scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, cast, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from junction.console.models import AuditEntry
from junction.platform.db import utcnow
from junction.platform.integrations.models import DeadLetter, IntegrationRun, RunStatus
from junction.platform.jobs.models import Job, JobQueue, JobState


@dataclass(frozen=True)
class JobFilter:
    state: str | None = None
    queue: str | None = None
    name: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    """Dotted keys (``user.id``) to the values the payload must hold there."""

    def as_parameters(self) -> dict[str, Any]:
        """The filter as JSON, for the bulk action's job and the audit log."""
        return {
            "state": self.state,
            "queue": self.queue,
            "name": self.name,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "payload": self.payload,
        }

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> JobFilter:
        def moment(value: Any) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        return cls(
            state=parameters.get("state"),
            queue=parameters.get("queue"),
            name=parameters.get("name"),
            since=moment(parameters.get("since")),
            until=moment(parameters.get("until")),
            payload=dict(parameters.get("payload") or {}),
        )


def _nested(payload: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in payload.items():
        *parents, last = dotted.split(".")
        level = nested
        for part in parents:
            level = level.setdefault(part, {})
        level[last] = value
    return nested


def _payload_holds(session: AsyncSession, payload: dict[str, Any]) -> list[ColumnElement[bool]]:
    if session.get_bind().dialect.name == "postgresql":
        return [cast(Job.payload, JSONB).contains(_nested(payload))]
    return [func.json_extract(Job.payload, f"$.{key}") == value for key, value in payload.items()]


def _matching(session: AsyncSession, wanted: JobFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if wanted.state:
        conditions.append(Job.state == wanted.state)
    if wanted.queue:
        conditions.append(Job.queue == wanted.queue)
    if wanted.name:
        conditions.append(Job.name == wanted.name)
    if wanted.since:
        conditions.append(Job.created_at >= wanted.since)
    if wanted.until:
        conditions.append(Job.created_at < wanted.until)
    if wanted.payload:
        conditions.extend(_payload_holds(session, wanted.payload))
    return conditions


async def jobs_page(
    session: AsyncSession, wanted: JobFilter, limit: int, before: int | None = None
) -> list[Job]:
    """The newest ``limit`` jobs matching ``wanted``, older than job ``before`` if given."""
    if wanted.payload and session.get_bind().dialect.name == "postgresql":
        # Planned for the value asked for: a rare pair is read through the GIN index, a
        # common one by walking ids backwards. A prepared statement's generic plan (which
        # PostgreSQL adopts after five runs) must guess, and walked a million ids for a
        # pair held by ten jobs.
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    query = select(Job).where(*_matching(session, wanted)).order_by(Job.id.desc()).limit(limit)
    if before is not None:
        query = query.where(Job.id < before)
    return list((await session.scalars(query)).all())


async def matching_job_ids(
    session: AsyncSession, wanted: JobFilter, limit: int, after: int = 0
) -> list[int]:
    """Ids of jobs matching ``wanted``, ascending from ``after``: a bulk action's batches."""
    query: Select[int] = (
        select(Job.id)
        .where(*_matching(session, wanted), Job.id > after)
        .order_by(Job.id)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def count_matching(session: AsyncSession, wanted: JobFilter) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Job).where(*_matching(session, wanted))
    )
    return int(count or 0)


async def job_holding(session: AsyncSession, unique_key: str, other_than: int) -> int | None:
    """The queued or running job that holds ``unique_key``, if it is not ``other_than``."""
    holder: int | None = await session.scalar(
        select(Job.id).where(
            Job.unique_key == unique_key,
            Job.state.in_((JobState.queued.value, JobState.running.value)),
            Job.id != other_than,
        )
    )
    return holder


@dataclass
class QueueFigures:
    name: str
    ready: int = 0
    scheduled: int = 0
    running: int = 0
    oldest_ready_at: datetime | None = None
    paused: bool = False

    @property
    def oldest_ready_seconds(self) -> float | None:
        if self.oldest_ready_at is None:
            return None
        return max((utcnow() - self.oldest_ready_at).total_seconds(), 0.0)


async def queue_figures(session: AsyncSession, known: Sequence[str]) -> list[QueueFigures]:
    """Every queue that has active jobs, is named in ``known`` or was ever paused."""
    now = utcnow()
    figures = {name: QueueFigures(name) for name in known}
    rows = await session.execute(
        select(
            Job.queue,
            Job.state,
            func.count().filter(Job.run_at <= now),
            func.count().filter(Job.run_at > now),
            func.min(Job.run_at),
        )
        .where(Job.state.in_((JobState.queued.value, JobState.running.value)))
        .group_by(Job.queue, Job.state)
    )
    for queue, state, due, later, oldest in rows:
        entry = figures.setdefault(queue, QueueFigures(queue))
        if state == JobState.running.value:
            entry.running = due + later
        else:
            entry.ready, entry.scheduled = due, later
            entry.oldest_ready_at = oldest if due else None
    for name, paused in await session.execute(select(JobQueue.name, JobQueue.paused)):
        figures.setdefault(name, QueueFigures(name)).paused = paused
    return sorted(figures.values(), key=lambda entry: entry.name)


async def workers_running_jobs(session: AsyncSession) -> list[tuple[str, int]]:
    """Each worker that holds running jobs, and how many."""
    rows = await session.execute(
        select(Job.locked_by, func.count())
        .where(Job.state == JobState.running.value, Job.locked_by.is_not(None))
        .group_by(Job.locked_by)
        .order_by(Job.locked_by)
    )
    return [(str(worker), int(count)) for worker, count in rows]


@dataclass
class IntegrationFigures:
    """Seed 004's four numbers for one integration and kind, over the last day."""

    integration: str
    kind: str
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    last_success_at: datetime | None = None
    success_times: list[datetime] = field(default_factory=list)
    open_dead_letters: int = 0

    @property
    def success_rate(self) -> float | None:
        finished = self.succeeded + self.failed
        return self.succeeded / finished if finished else None

    @property
    def seconds_between_successes(self) -> float | None:
        times = sorted(self.success_times)
        if len(times) < 2:
            return None
        return (times[-1] - times[0]).total_seconds() / (len(times) - 1)

    @property
    def freshness_seconds(self) -> float | None:
        if self.last_success_at is None:
            return None
        return max((utcnow() - self.last_success_at).total_seconds(), 0.0)


async def integration_figures(session: AsyncSession, window: timedelta) -> list[IntegrationFigures]:
    since = utcnow() - window
    figures: dict[tuple[str, str], IntegrationFigures] = {}

    def entry(integration: str, kind: str) -> IntegrationFigures:
        return figures.setdefault((integration, kind), IntegrationFigures(integration, kind))

    last_success = await session.execute(
        select(
            IntegrationRun.integration, IntegrationRun.kind, func.max(IntegrationRun.finished_at)
        )
        .where(IntegrationRun.status == RunStatus.succeeded.value)
        .group_by(IntegrationRun.integration, IntegrationRun.kind)
    )
    for integration, kind, at in last_success:
        entry(integration, kind).last_success_at = at
    recent = await session.execute(
        select(
            IntegrationRun.integration,
            IntegrationRun.kind,
            IntegrationRun.status,
            IntegrationRun.finished_at,
        ).where(IntegrationRun.started_at >= since)
    )
    for integration, kind, status, finished_at in recent:
        figure = entry(integration, kind)
        figure.runs += 1
        if status == RunStatus.succeeded.value:
            figure.succeeded += 1
            if finished_at is not None:
                figure.success_times.append(finished_at)
        elif status == RunStatus.failed.value:
            figure.failed += 1
    open_letters = await session.execute(
        select(DeadLetter.integration, DeadLetter.kind, func.count())
        .where(DeadLetter.resolved_at.is_(None))
        .group_by(DeadLetter.integration, DeadLetter.kind)
    )
    for integration, kind, count in open_letters:
        entry(integration, kind).open_dead_letters = int(count)
    return sorted(figures.values(), key=lambda f: (f.integration, f.kind))


async def recent_runs(
    session: AsyncSession, limit: int, integration: str | None = None
) -> list[IntegrationRun]:
    query = select(IntegrationRun).order_by(IntegrationRun.id.desc()).limit(limit)
    if integration:
        query = query.where(IntegrationRun.integration == integration)
    return list((await session.scalars(query)).all())


async def open_dead_letters(
    session: AsyncSession, limit: int, integration: str | None = None
) -> list[DeadLetter]:
    query = (
        select(DeadLetter)
        .where(DeadLetter.resolved_at.is_(None))
        .order_by(DeadLetter.id.desc())
        .limit(limit)
    )
    if integration:
        query = query.where(DeadLetter.integration == integration)
    return list((await session.scalars(query)).all())


async def dead_letter(session: AsyncSession, letter_id: int) -> DeadLetter | None:
    return await session.get(DeadLetter, letter_id, with_for_update=True)


async def audit_page(
    session: AsyncSession, limit: int, before: int | None = None
) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    return list((await session.scalars(query)).all())


async def audit_entry(session: AsyncSession, entry_id: int) -> AuditEntry | None:
    return await session.get(AuditEntry, entry_id)
