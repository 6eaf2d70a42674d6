"""The kit's three tables, shared by every integration.

``integration_runs``: one row per run of any integration, with the same counts everywhere
(``set_aside`` counts the records that went to the dead letters: the feed's skipped
records, the wellness API's refused ones, Airtable's rejected users). ``rows_written`` > 0
marks a run that changed data, which the events cache keys use as the data version.
``integration_dead_letters``: each record set aside, with its payload, error, run and how it
was resolved. ``integration_leases``: who runs a kind now, until when.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from junction.platform.db import Base, RowId, UTCDateTime, utcnow


class RunStatus(StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class IntegrationRun(Base):
    __tablename__ = "integration_runs"
    __table_args__ = (
        Index(
            "ix_integration_runs_integration_kind_started_at", "integration", "kind", "started_at"
        ),
        Index(
            "ix_integration_runs_integration_rows_written_id", "integration", "rows_written", "id"
        ),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    integration: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    trigger: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16), default="full")
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.running.value)
    job_id: Mapped[int | None] = mapped_column(RowId, default=None)
    source: Mapped[str | None] = mapped_column(String(2000), default=None)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    cursor_from: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    cursor_to: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    set_aside: Mapped[int] = mapped_column(Integer, default=0)
    rows_written: Mapped[int] = mapped_column(Integer, default=0)
    bytes_read: Mapped[int | None] = mapped_column(BigInteger, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    notes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """What the run reported beside its counts (the first problems it met), for operators."""


class DeadLetter(Base):
    """A record an integration could not take; the run went on without it."""

    __tablename__ = "integration_dead_letters"
    __table_args__ = (
        Index("ix_integration_dead_letters_lookup", "integration", "kind", "external_id"),
        Index("ix_integration_dead_letters_run_id", "run_id"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    integration: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[int] = mapped_column(RowId, ForeignKey("integration_runs.id"))
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)
    payload: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    resolution: Mapped[str | None] = mapped_column(String(16), default=None)
    """``superseded`` (a later version landed), ``replayed`` or ``dismissed``."""


class Lease(Base):
    """Who runs ``name`` (an integration's kind) now, and until when."""

    __tablename__ = "integration_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(100), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
