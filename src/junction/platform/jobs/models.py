"""The tables of the job system: ``jobs`` (one row per job) and ``job_schedules``.

A job's life: ``queued`` -> ``running`` -> ``succeeded``; a failed attempt goes back to
``queued`` with a later ``run_at`` until ``max_attempts`` is spent, then to ``dead``,
kept until an operator retries or discards it. Unique keys are held only while a job is
``queued`` or ``running``: a partial unique index enforces that, so leaving those states
in any way (success, death, discard, the reaper) releases the key in the same write.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, text, true
from sqlalchemy.orm import Mapped, mapped_column

from junction.platform.db import Base, RowId, UTCDateTime, utcnow


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    dead = "dead"
    discarded = "discarded"


ACTIVE_STATES = (JobState.queued, JobState.running)
_ACTIVE_SQL = text("state IN ('queued', 'running')")


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    payload: Mapped[Any] = mapped_column(JSON, nullable=True)
    queue: Mapped[str] = mapped_column(String(100))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default=JobState.queued.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    timeout_seconds: Mapped[float] = mapped_column(Float)
    unique_key: Mapped[str | None] = mapped_column(String(300), default=None)
    created_by: Mapped[str | None] = mapped_column(String(64), default=None)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    locked_by: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    result: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)

    __table_args__ = (
        # The claim query walks this index in order: ready jobs of a queue, best first.
        Index(
            "ix_jobs_ready",
            "queue",
            "priority",
            "run_at",
            "id",
            sqlite_where=text("state = 'queued'"),
            postgresql_where=text("state = 'queued'"),
        ),
        Index(
            "uq_jobs_active_unique_key",
            "unique_key",
            unique=True,
            sqlite_where=_ACTIVE_SQL,
            postgresql_where=_ACTIVE_SQL,
        ),
        Index(
            "ix_jobs_lease",
            "lease_expires_at",
            sqlite_where=text("state = 'running'"),
            postgresql_where=text("state = 'running'"),
        ),
        Index("ix_jobs_state_finished_at", "state", "finished_at"),
    )


class Schedule(Base):
    """One row per named schedule; ``next_run_at`` is the compare-and-set token of a tick."""

    __tablename__ = "job_schedules"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    job_name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[str] = mapped_column(String(200))
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_job_id: Mapped[int | None] = mapped_column(RowId, default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    """A disabled schedule keeps its row and timetable; no scheduler fires it."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobQueue(Base):
    """A queue an operator has paused (or paused and resumed): the claim of every worker, in
    every process, skips the queues paused here. A queue with no row runs."""

    __tablename__ = "job_queues"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobMinute(Base):
    """Jobs finished per queue and minute, rolled up from ``jobs`` by a scheduled job: the
    history of throughput outlives the pruning of the jobs themselves."""

    __tablename__ = "job_minutes"

    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    queue: Mapped[str] = mapped_column(String(100), primary_key=True)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    dead: Mapped[int] = mapped_column(Integer, default=0)
