"""What each integration offers its operators: how to start a sync, and how to run one of
its dead letters again. A domain registers its entry when its jobs module loads; the
console lists the entries and acts through them, without naming a domain.

A replay runs in the job ``integrations.replay_dead_letter``: the domain's ``replay`` takes
the stored payload through its mapping again (after a fix, say) in the job's transaction.
It raises ``RecordRejected`` when the record is still refused: the letter stays open with
the new reason. Any other exception fails the attempt, which the job system retries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.db import utcnow
from junction.platform.integrations.models import DeadLetter
from junction.platform.integrations.records import RecordRejected
from junction.platform.jobs import JobContext, registry

REPLAY_JOB = "integrations.replay_dead_letter"

Replay = Callable[[AsyncSession, JobContext, DeadLetter], Awaitable[None]]


@dataclass(frozen=True)
class SyncTrigger:
    """One way to start a sync from the console: a job, its payload and its unique key."""

    label: str
    job_name: str
    payload: dict[str, Any]
    unique_key: str | None = None


@dataclass(frozen=True)
class IntegrationEntry:
    name: str
    """As in the runs' and dead letters' ``integration`` column."""
    label: str
    triggers: tuple[SyncTrigger, ...]
    replay: Replay | None = None


@dataclass
class Catalog:
    entries: dict[str, IntegrationEntry] = field(default_factory=dict)

    def register(self, entry: IntegrationEntry) -> None:
        self.entries[entry.name] = entry

    def trigger(self, integration: str, label: str) -> SyncTrigger | None:
        entry = self.entries.get(integration)
        if entry is None:
            return None
        return next((t for t in entry.triggers if t.label == label), None)


catalog = Catalog()


@registry.job(REPLAY_JOB, max_attempts=3)
async def replay_dead_letter(job: JobContext) -> dict[str, Any]:
    letter_id = int((job.payload or {})["dead_letter_id"])
    async with job.database.transaction() as session:
        letter = await session.get(DeadLetter, letter_id, with_for_update=True)
        if letter is None or letter.resolved_at is not None:
            return {"replayed": False, "reason": "the dead letter is gone or already resolved"}
        entry = catalog.entries.get(letter.integration)
        if entry is None or entry.replay is None:
            return {"replayed": False, "reason": f"{letter.integration} has no replay"}
        try:
            async with session.begin_nested():
                await entry.replay(session, job, letter)
        except RecordRejected as exc:
            letter.error = str(exc)
            return {"replayed": False, "reason": str(exc)}
        letter.resolved_at = utcnow()
        letter.resolution = "replayed"
    return {"replayed": True}
