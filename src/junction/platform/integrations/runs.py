"""A run's life in the run record, and the report its watchers see.

Each function works in the caller's transaction, so a page's rows, its counts and its dead
letters land in one commit. ``RunReport`` mirrors the run row as the run goes, for the
CLI's progress, the live channel and the job's result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Self, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.db import run_after_commit, utcnow
from junction.platform.integrations import repository
from junction.platform.integrations.models import IntegrationRun, RunStatus

MAX_NOTES = 100
MAX_ERROR_LENGTH = 2000
MAX_PAYLOAD_LENGTH = 20_000
ID_LENGTH = 200  # integration_dead_letters.external_id


@dataclass
class RunCounts:
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    set_aside: int = 0

    def add(self, other: RunCounts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass(frozen=True)
class SetAside:
    """A record an integration could not take, with why."""

    external_id: str | None
    payload: Any
    error: str


@dataclass
class RunReport:
    run_id: int
    integration: str
    kind: str
    trigger: str
    mode: str
    status: str
    counts: RunCounts = field(default_factory=RunCounts)
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    retryable: bool = False
    """A failure that a later attempt may not meet (429, 5xx, timeouts, a crash)."""

    def snapshot(self) -> Self:
        return replace(self, counts=replace(self.counts))

    def as_message(self, count_names: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The live channel's message; ``count_names`` renames counts for a domain whose
        published shape predates the kit."""
        names = count_names or {}
        return {
            "type": f"{self.integration}_sync",
            "run_id": self.run_id,
            "kind": self.kind,
            "trigger": self.trigger,
            "mode": self.mode,
            "status": self.status,
            "counts": {names.get(k, k): v for k, v in asdict(self.counts).items()},
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


Report = TypeVar("Report", bound=RunReport)


def observe_after_commit(
    session: AsyncSession, report: Report, observe: Callable[[Report], None]
) -> None:
    """Tell ``observe`` (the CLI's progress, the live channel) of the report as it is now,
    once the transaction commits."""
    snapshot = report.snapshot()
    run_after_commit(session, lambda: observe(snapshot))


async def open_run(
    session: AsyncSession,
    integration: str,
    kind: str,
    trigger: str,
    **values: Any,
) -> RunReport:
    """A new run row (``mode``, ``job_id``, ``source``, ``cursor_from`` as given)."""
    now = utcnow()
    run = IntegrationRun(
        integration=integration, kind=kind, trigger=trigger, started_at=now, **values
    )
    session.add(run)
    await session.flush()
    return RunReport(
        run.id, integration, kind, trigger, run.mode, RunStatus.running.value, started_at=now
    )


async def add_counts(session: AsyncSession, report: RunReport, counts: RunCounts) -> None:
    report.counts.add(counts)
    await repository.add_counts(session, report.run_id, asdict(counts))


async def finish_run(
    session: AsyncSession,
    report: RunReport,
    status: RunStatus,
    *,
    error: str | None = None,
    notes: Sequence[str] = (),
    **values: Any,
) -> None:
    """Close the run (``rows_written``, ``cursor_to``, ``bytes_read`` ... as given)."""
    error = error[:MAX_ERROR_LENGTH] if error is not None else None
    report.status, report.error, report.finished_at = status.value, error, utcnow()
    await repository.update_run(
        session,
        report.run_id,
        status=status.value,
        finished_at=report.finished_at,
        mode=report.mode,
        error=error,
        notes=list(notes[:MAX_NOTES]),
        **values,
    )


async def record_interrupted(session: AsyncSession, run_id: int) -> None:
    """A run whose holder died mid-run, found by the run that took its lease over."""
    await repository.update_run(
        session,
        run_id,
        status=RunStatus.failed.value,
        finished_at=utcnow(),
        error="interrupted: its worker stopped mid-run; a later run took over",
    )


async def set_aside(
    session: AsyncSession, report: RunReport, records: Sequence[SetAside], now: datetime
) -> None:
    """The records go to the dead letters, each with its payload and error."""
    await repository.add_dead_letters(
        session,
        [
            {
                "integration": report.integration,
                "kind": report.kind,
                "run_id": report.run_id,
                "external_id": record.external_id[:ID_LENGTH] if record.external_id else None,
                "payload": storable(record.payload),
                "error": record.error,
                "created_at": now,
            }
            for record in records
        ],
    )


def storable(payload: Any) -> Any:
    """The payload as strict JSON, or, when it is not or is too big, its text cut short."""
    try:
        encoded = json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError):
        return repr(payload)[:MAX_PAYLOAD_LENGTH]
    return payload if len(encoded) <= MAX_PAYLOAD_LENGTH else encoded[:MAX_PAYLOAD_LENGTH]


async def resolve_dead_letters(
    session: AsyncSession,
    integration: str,
    kind: str,
    external_ids: Sequence[str],
    now: datetime,
    resolution: str = "superseded",
) -> None:
    """Dead letters of these records are settled: a later version of each has landed."""
    if external_ids:
        await repository.resolve_dead_letters(
            session, integration, kind, external_ids, now, resolution
        )
