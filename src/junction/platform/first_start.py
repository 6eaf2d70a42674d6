"""Steps that run once per database, on the first start whose settings ask for them.

A step (sample data, a demo account) is recorded in ``first_start_steps`` in the same
transaction as its work, so a restart, a second process starting at the same moment, or
the migrate step run again never repeats it, even after its data was deleted: the seed's
"a restart never seeds twice". A step whose transaction fails leaves no record and runs
again at the next start.

The platform names no domain: the app factory lists the domains' steps, and ``junction
migrate`` and ``junction serve`` (when it migrates) run them after the migrations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import String, Text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from junction.platform.db import Base, Database, UTCDateTime, utcnow
from junction.platform.sql import insert_for
from junction.settings import Settings

log = structlog.get_logger(__name__)


class FirstStartRecord(Base):
    """One row per step that has run on this database, with what it reported."""

    __tablename__ = "first_start_steps"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(Text, default="")


@dataclass(frozen=True)
class FirstStartStep:
    name: str
    run: Callable[[AsyncSession], Awaitable[str]]
    """Does the work in the given transaction and says what it did (for the log)."""
    wanted: Callable[[Settings], bool]
    """Whether these settings ask for the step; a step not wanted is not recorded."""


async def run_first_start_steps(
    database: Database, settings: Settings, steps: Sequence[FirstStartStep]
) -> dict[str, str]:
    """Run every wanted step that never ran on this database; returns their outcomes."""
    outcomes: dict[str, str] = {}
    for step in steps:
        if not step.wanted(settings):
            continue
        async with database.transaction() as session:
            record = await _claim(session, step.name)
            if record is None:
                continue
            record.outcome = await step.run(session)
        outcomes[step.name] = record.outcome
        log.info("first start step done", step=step.name, outcome=record.outcome)
    return outcomes


async def _claim(session: AsyncSession, name: str) -> FirstStartRecord | None:
    """The step's new record, or None when it ran before. On PostgreSQL a second process
    claiming at the same moment waits for the first one's commit, then finds the row."""
    claimed = await session.scalar(
        insert_for(session, FirstStartRecord)
        .values(name=name, completed_at=utcnow(), outcome="")
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(FirstStartRecord.name)
    )
    if claimed is None:
        return None
    return await session.get_one(FirstStartRecord, name)
