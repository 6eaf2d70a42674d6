"""The job table's operations: enqueue, claim, heartbeat, complete, fail, release, reap.

Every function takes the caller's session and only reads or writes rows; the caller
commits. Enqueue therefore joins the caller's transaction (the job exists if and only if
that commits), and a worker folds its completions and its next claim into one write
transaction, which on SQLite (one writer at a time) is what keeps throughput up.

The queue's statements stay here rather than in ``repository.py`` because they are the
queue: its guarantees (skip-locked claims, owner-guarded writes, unique keys) are its SQL.

Ownership: a claim stamps ``locked_by`` and ``lease_expires_at``; every later write by a
worker is guarded by ``locked_by = <its id>``, so a worker whose lease expired and whose
job was handed to another worker changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    BigInteger,
    Table,
    and_,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.db import pending_after_commit, utcnow
from junction.platform.errors import Conflict, NotFound
from junction.platform.jobs.models import Job, JobQueue, JobState
from junction.platform.jobs.registry import JobDefinition, JobRegistry, registry

NOTIFY_CHANNEL = "junction_jobs"
KEPT_ERRORS = 20
MAX_JOB_ID = 2**63 - 1
"""The largest id a job can have: a 64-bit integer column on every database."""
# A job due within this many seconds wakes this process's workers when it falls due (a
# little after, so that the claim finds it due); later ones are left to the workers' poll.
DUE_WAKEUP_HORIZON = 60.0
DUE_WAKEUP_MARGIN = 0.005

jobs = cast(Table, Job.__table__)
job_queues = cast(Table, JobQueue.__table__)

# Workers of this process wait on these; enqueue sets them after its transaction commits.
_local_wakeups: set[asyncio.Event] = set()


def add_local_wakeup(event: asyncio.Event) -> None:
    _local_wakeups.add(event)


def remove_local_wakeup(event: asyncio.Event) -> None:
    _local_wakeups.discard(event)


def wake_local_workers() -> None:
    for event in _local_wakeups:
        event.set()


@dataclass(frozen=True)
class Enqueued:
    id: int
    created: bool
    """False when a job with the same unique key was queued or running: this is its id."""


async def enqueue(
    session: AsyncSession,
    name: str,
    payload: Any = None,
    *,
    queue: str | None = None,
    priority: int | None = None,
    run_at: datetime | None = None,
    delay_seconds: float | None = None,
    max_attempts: int | None = None,
    timeout_seconds: float | None = None,
    unique_key: str | None = None,
    created_by: str | None = None,
    jobs_registry: JobRegistry = registry,
) -> Enqueued:
    """Add a job in the caller's transaction; defaults come from the handler's registration.

    With ``unique_key``, a job holding that key while queued or running absorbs this one:
    its id comes back with ``created=False``.
    """
    now = utcnow()
    values = _row(
        jobs_registry.get(name),
        now,
        payload,
        queue=queue,
        priority=priority,
        run_at=run_at or now + timedelta(seconds=delay_seconds or 0),
        max_attempts=max_attempts,
        timeout_seconds=timeout_seconds,
        unique_key=unique_key,
        created_by=created_by,
    )
    job_id = await _insert(session, values)
    while job_id is None:
        assert unique_key is not None
        job_id = await _active_job_with_key(session, unique_key)
        if job_id is not None:
            return Enqueued(job_id, created=False)
        # The holder finished between our insert and our look-up: the key is free again.
        job_id = await _insert(session, values)
    await _wake_workers(session, str(values["queue"]), [values["run_at"]])
    return Enqueued(job_id, created=True)


async def enqueue_many(
    session: AsyncSession,
    name: str,
    payloads: Sequence[Any],
    *,
    queue: str | None = None,
    jobs_registry: JobRegistry = registry,
) -> None:
    """Add many jobs of one name in a single INSERT (no unique keys, handler defaults)."""
    if not payloads:
        return
    definition, now = jobs_registry.get(name), utcnow()
    rows = [_row(definition, now, payload, queue=queue) for payload in payloads]
    await session.execute(insert(jobs), rows)
    await _announce(session, str(rows[0]["queue"]))


async def enqueue_unique(
    session: AsyncSession,
    name: str,
    payloads: Mapping[str, Any],
    *,
    run_at: datetime | Mapping[str, datetime] | None = None,
    jobs_registry: JobRegistry = registry,
) -> dict[str, Enqueued]:
    """``enqueue`` for many unique keys (each with its payload), in two statements;
    ``run_at`` is one time for all, or each key's own.

    Each key gets the job that holds it (``created=False``) or a new one. Holders are found
    first by a plain read: joining a job that exists takes no lock, so it never waits on
    another transaction that is inserting the same key. The other keys go in one INSERT,
    not one per key: a chat batch's counts jobs, for dozens of chats at once.
    """
    held = await _active_jobs_with_keys(session, list(payloads))
    enqueued = {key: Enqueued(job_id, created=False) for key, job_id in held.items()}
    missing = sorted(payloads.keys() - held.keys())
    if not missing:
        return enqueued
    definition, now = jobs_registry.get(name), utcnow()
    # In key order, so that transactions enqueueing the same keys wait on each other's
    # keys in one order, never in a cycle.
    rows = [
        _row(definition, now, payloads[key], run_at=_run_at_of(key, run_at) or now, unique_key=key)
        for key in missing
    ]
    inserted = await session.execute(
        _unique_insert(session).returning(jobs.c.unique_key, jobs.c.id), rows
    )
    created = {key: Enqueued(job_id, created=True) for key, job_id in inserted}
    enqueued |= created
    run_ats = [row["run_at"] for row in rows if row["unique_key"] in created]
    await _wake_workers(session, str(rows[0]["queue"]), run_ats)
    for key in sorted(payloads.keys() - enqueued.keys()):  # taken, or freed, meanwhile: rare
        enqueued[key] = await enqueue(
            session,
            name,
            payloads[key],
            run_at=_run_at_of(key, run_at),
            unique_key=key,
            jobs_registry=jobs_registry,
        )
    return enqueued


def _run_at_of(key: str, run_at: datetime | Mapping[str, datetime] | None) -> datetime | None:
    return run_at.get(key) if isinstance(run_at, Mapping) else run_at


def _row(
    definition: JobDefinition,
    now: datetime,
    payload: Any,
    *,
    queue: str | None = None,
    priority: int | None = None,
    run_at: datetime | None = None,
    max_attempts: int | None = None,
    timeout_seconds: float | None = None,
    unique_key: str | None = None,
    created_by: str | None = None,
) -> dict[str, Any]:
    """A job's row: what the caller gave, the handler's registration for the rest."""
    return {
        "name": definition.name,
        "payload": payload,
        "queue": queue or definition.queue,
        "priority": definition.priority if priority is None else priority,
        "state": JobState.queued.value,
        "attempts": 0,
        "max_attempts": max_attempts or definition.max_attempts,
        "timeout_seconds": timeout_seconds or definition.timeout_seconds,
        "unique_key": unique_key,
        "created_by": created_by,
        "run_at": run_at or now,
        "created_at": now,
        "errors": [],
    }


def _unique_insert(session: AsyncSession) -> Any:
    """INSERT that skips a row whose unique key a queued or running job holds.

    Rows are given at execution, never with ``values([...])``: SQLAlchemy cannot cache a
    statement that carries many rows' values, so it compiled one for every call (a third
    of the CPU of a chat batch that enqueued a counts job, under cProfile)."""
    dialect = session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return upsert(jobs).on_conflict_do_nothing(
        index_elements=["unique_key"], index_where=text("state IN ('queued', 'running')")
    )


async def _insert(session: AsyncSession, values: dict[str, Any]) -> int | None:
    statement = insert(jobs) if values["unique_key"] is None else _unique_insert(session)
    result = await session.execute(statement.returning(jobs.c.id), values)
    job_id: int | None = result.scalar_one_or_none()
    return job_id


async def _active_job_with_key(session: AsyncSession, unique_key: str) -> int | None:
    return (await _active_jobs_with_keys(session, [unique_key])).get(unique_key)


async def _active_jobs_with_keys(session: AsyncSession, unique_keys: list[str]) -> dict[str, int]:
    """The queued or running job holding each of ``unique_keys``, read without a lock."""
    if not unique_keys:
        return {}
    rows = await session.execute(
        select(jobs.c.unique_key, jobs.c.id).where(
            jobs.c.unique_key.in_(unique_keys),
            # Spelled as the partial unique index's predicate, so SQLite uses the index.
            text("state IN ('queued', 'running')"),
        )
    )
    return {key: job_id for key, job_id in rows}


async def _wake_workers(session: AsyncSession, queue: str, run_ats: Sequence[datetime]) -> None:
    """Once the transaction commits, wake workers for the jobs it queued at ``run_ats``.

    For a job due now, every worker at once (``_announce``). For one due later, this
    process's workers when it falls due: woken at once, a worker would find nothing to
    claim (a burst of enqueues of delayed jobs, a chat batch's counts jobs, woke the workers
    for a useless claim each time), and left to the poll, jobs spread over time (each
    chat's counts job at its own phase, retries at their backoff) were claimed in a burst
    at each poll, which delayed the requests in flight meanwhile. Other processes' workers
    find it by their poll.
    """
    now = utcnow()
    if any(run_at <= now for run_at in run_ats):
        await _announce(session, queue)
    later = [run_at for run_at in run_ats if run_at > now]
    if later:
        pending_after_commit(session, "junction.jobs.due_later", _set_due_wakeups).extend(later)


async def _announce(session: AsyncSession, queue: str) -> None:
    """Wake every worker once the transaction commits: NOTIFY on PostgreSQL, an event
    in-process."""
    announced = pending_after_commit(
        session, "junction.jobs.announced", lambda _queues: wake_local_workers()
    )
    if queue in announced:
        return
    announced.append(queue)
    if session.get_bind().dialect.name == "postgresql":
        # Delivered by PostgreSQL only if and when the transaction commits.
        await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, queue)))


def _set_due_wakeups(run_ats: list[datetime]) -> None:
    loop, now = asyncio.get_running_loop(), utcnow()
    # Once per distinct instant: a batch's jobs often fall due together.
    for run_at in set(run_ats):
        delay = (run_at - now).total_seconds()
        if delay <= DUE_WAKEUP_HORIZON:
            loop.call_later(delay + DUE_WAKEUP_MARGIN, wake_local_workers)


class ClaimedJob(NamedTuple):
    """A claimed job as its worker needs it; a tuple, built straight from its row (a worker
    claims thousands a second). Its past errors are read only if it fails (``fail``)."""

    id: int
    name: str
    payload: Any
    queue: str
    attempts: int
    max_attempts: int
    timeout_seconds: float


async def claim(
    session: AsyncSession, worker_id: str, queue: str, limit: int, lease_seconds: float
) -> list[ClaimedJob]:
    """Take up to ``limit`` ready jobs of ``queue``, best first, for ``worker_id``.

    PostgreSQL: concurrent claimers skip each other's locked rows. SQLite: the caller's
    write transaction (BEGIN IMMEDIATE) already excludes every other writer.
    """
    now = utcnow()
    paused = select(job_queues.c.name).where(job_queues.c.name == queue, job_queues.c.paused)
    ready = (
        select(jobs.c.id)
        .where(
            jobs.c.state == JobState.queued.value,
            jobs.c.queue == queue,
            jobs.c.run_at <= now,
            ~paused.exists(),
        )
        .order_by(jobs.c.priority, jobs.c.run_at, jobs.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(jobs)
        .where(jobs.c.id.in_(ready.scalar_subquery()))
        .values(
            state=JobState.running.value,
            locked_by=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=jobs.c.attempts + 1,
            started_at=now,
        )
        .returning(
            jobs.c.id,
            jobs.c.name,
            jobs.c.payload,
            jobs.c.queue,
            jobs.c.attempts,
            jobs.c.max_attempts,
            jobs.c.timeout_seconds,
        )
    )
    rows = (await session.execute(statement)).all()
    return [ClaimedJob._make(row) for row in rows]


def _owned(session: AsyncSession, worker_id: str, job_ids: list[int]) -> Any:
    return and_(
        _one_of(session, job_ids),
        jobs.c.locked_by == worker_id,
        jobs.c.state == JobState.running.value,
    )


def _one_of(session: AsyncSession, job_ids: list[int]) -> Any:
    """``id`` among ``job_ids``: on PostgreSQL as ``= ANY`` of one array parameter, so the
    statement's text is the same for any number of ids (SQLAlchemy renders an ``IN`` list
    anew for each call, a bind parameter per id, and asyncpg prepares each new text: a
    tenth of a busy worker's CPU went to the ``IN`` lists of its completions)."""
    if session.get_bind().dialect.name == "postgresql":
        return jobs.c.id == any_(bindparam("job_ids", job_ids, type_=postgresql.ARRAY(BigInteger)))
    return jobs.c.id.in_(job_ids)


async def heartbeat(
    session: AsyncSession, worker_id: str, job_ids: list[int], lease_seconds: float
) -> set[int]:
    """Extend the leases of the given jobs; returns the ids this worker still owns."""
    if not job_ids:
        return set()
    result = await session.execute(
        update(jobs)
        .where(_owned(session, worker_id, job_ids))
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        .returning(jobs.c.id)
    )
    return set(result.scalars())


async def complete(session: AsyncSession, worker_id: str, outcomes: list[tuple[int, Any]]) -> None:
    """Mark jobs succeeded, with their result summaries; releases their unique keys."""
    now = utcnow()
    done = {"state": JobState.succeeded.value, "finished_at": now}
    released = {"locked_by": None, "lease_expires_at": None}
    bare = [job_id for job_id, result in outcomes if result is None]
    if bare:
        await session.execute(
            update(jobs).where(_owned(session, worker_id, bare)).values(**done, **released)
        )
    with_result = [{"job_id": i, "job_result": r} for i, r in outcomes if r is not None]
    if with_result:
        await session.execute(
            update(jobs)
            .where(
                jobs.c.id == bindparam("job_id"),
                jobs.c.locked_by == worker_id,
                jobs.c.state == JobState.running.value,
            )
            .values(**done, **released, result=bindparam("job_result")),
            with_result,
        )


def describe_error(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "at": utcnow().isoformat().replace("+00:00", "Z"),
    }


async def fail(
    session: AsyncSession,
    worker_id: str,
    job: ClaimedJob,
    error: dict[str, Any],
    retry_at: datetime | None,
) -> None:
    """Record a failed attempt: back to the queue at ``retry_at``, or dead when None."""
    owned = _owned(session, worker_id, [job.id])
    past = await session.scalar(select(jobs.c.errors).where(owned))
    values: dict[str, Any] = {
        "errors": [*(past or []), error][-KEPT_ERRORS:],
        "locked_by": None,
        "lease_expires_at": None,
    }
    if retry_at is None:
        values.update(state=JobState.dead.value, finished_at=utcnow())
    else:
        values.update(state=JobState.queued.value, run_at=retry_at)
    await session.execute(update(jobs).where(owned).values(**values))
    if retry_at is not None:
        await _wake_workers(session, job.queue, [retry_at])


async def release(session: AsyncSession, worker_id: str, job_ids: list[int]) -> None:
    """Give unfinished jobs back at shutdown; the interrupted attempt does not count."""
    if not job_ids:
        return
    result = await session.execute(
        update(jobs)
        .where(_owned(session, worker_id, job_ids))
        .values(
            state=JobState.queued.value,
            locked_by=None,
            lease_expires_at=None,
            attempts=jobs.c.attempts - 1,
            run_at=utcnow(),
        )
        .returning(jobs.c.queue)
    )
    for queue in set(result.scalars()):
        await _announce(session, queue)


async def reap(session: AsyncSession, limit: int = 100) -> int:
    """Return jobs whose lease expired (their worker died) to the queue, or to dead."""
    now = utcnow()
    expired = (
        await session.execute(
            select(jobs.c.id, jobs.c.queue, jobs.c.attempts, jobs.c.max_attempts, jobs.c.errors)
            .where(jobs.c.state == JobState.running.value, jobs.c.lease_expires_at < now)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for job_id, queue, attempts, max_attempts, errors in expired:
        lost = {
            "type": "LeaseExpired",
            "message": "the worker stopped heartbeating (crashed or was killed) mid-job",
            "traceback": None,
            "at": now.isoformat().replace("+00:00", "Z"),
        }
        values: dict[str, Any] = {
            "errors": [*(errors or []), lost][-KEPT_ERRORS:],
            "locked_by": None,
            "lease_expires_at": None,
        }
        if attempts >= max_attempts:
            values.update(state=JobState.dead.value, finished_at=now)
        else:
            values.update(state=JobState.queued.value, run_at=now)
            await _announce(session, queue)
        await session.execute(
            update(jobs)
            .where(
                jobs.c.id == job_id,
                jobs.c.state == JobState.running.value,
                jobs.c.lease_expires_at < now,
            )
            .values(**values)
        )
    return len(expired)


async def retry(session: AsyncSession, job_id: int) -> Job:
    """Put a dead or discarded job back in its queue with a fresh set of attempts."""
    job = await _get(session, job_id)
    if job.state not in (JobState.dead, JobState.discarded):
        raise Conflict(f"job {job_id} is {job.state}; only dead or discarded jobs are retried")
    unique_key = job.unique_key
    try:
        async with session.begin_nested():
            job.state = JobState.queued.value
            job.attempts = 0
            job.run_at = utcnow()
            job.finished_at = None
            await session.flush()
    except IntegrityError:
        holder = await _active_job_with_key(session, str(unique_key))
        raise Conflict(
            f"job {holder} holds unique key {unique_key!r} (it is queued or running); "
            f"job {job_id} can be retried once it finishes"
        ) from None
    await _announce(session, job.queue)
    return job


async def run_now(session: AsyncSession, job_id: int) -> Job:
    """Make a queued job due now (one waiting for its time or for a retry's backoff)."""
    job = await _get(session, job_id)
    if job.state != JobState.queued:
        raise Conflict(f"job {job_id} is {job.state}; only queued jobs are run now")
    job.run_at = utcnow()
    await session.flush()
    await _announce(session, job.queue)
    return job


async def set_paused(session: AsyncSession, queue: str, paused: bool) -> None:
    """Pause or resume ``queue`` for every worker; resuming wakes them."""
    dialect = session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = upsert(job_queues).values(name=queue, paused=paused, updated_at=utcnow())
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"paused": statement.excluded.paused, "updated_at": statement.excluded.updated_at},
        )
    )
    if not paused:
        await _announce(session, queue)


async def discard(session: AsyncSession, job_id: int) -> Job:
    """Drop a dead or still-queued job for good (it stays visible until pruned)."""
    job = await _get(session, job_id)
    if job.state not in (JobState.dead, JobState.queued):
        raise Conflict(f"job {job_id} is {job.state}; only dead or queued jobs are discarded")
    job.state = JobState.discarded.value
    job.finished_at = utcnow()
    await session.flush()
    return job


async def _get(session: AsyncSession, job_id: int) -> Job:
    if not 1 <= job_id <= MAX_JOB_ID:  # the database would refuse to compare it
        raise NotFound(f"job {job_id} does not exist")
    job = await session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    return job


async def prune(
    session: AsyncSession,
    older_than: datetime,
    *,
    names: Sequence[str] = (),
    other_than: Sequence[str] = (),
    batch: int = 1000,
) -> int:
    """Delete one batch of succeeded and discarded jobs finished before ``older_than``: of
    the job ``names`` if given, and of no job of ``other_than``."""
    finished = select(jobs.c.id).where(
        jobs.c.state.in_((JobState.succeeded.value, JobState.discarded.value)),
        jobs.c.finished_at < older_than,
    )
    if names:
        finished = finished.where(jobs.c.name.in_(names))
    if other_than:
        finished = finished.where(jobs.c.name.not_in(other_than))
    finished = finished.limit(batch)
    result = await session.execute(delete(jobs).where(jobs.c.id.in_(finished.scalar_subquery())))
    return int(getattr(result, "rowcount", 0) or 0)


# Remembered: the creates of one window share their chat's counts job, so one job's
# token is handed out many times in a row.
@functools.lru_cache(maxsize=4096)
def job_token(secret_key: str, job_id: int) -> str:
    """A capability to read one job's status: an HMAC of its id, safe to hand to a client."""
    digest = hmac.new(secret_key.encode(), f"job:{job_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def token_allows(secret_key: str, job_id: int, token: str) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters, which a client may send.
    return hmac.compare_digest(job_token(secret_key, job_id).encode(), token.encode())
