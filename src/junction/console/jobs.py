"""The console's background job: an action on every job matching a filter.

It walks the matching jobs by ascending id in batches, one transaction each, and writes its
progress to its audit entry in the same transaction, so the page shows how far it got and
a worker killed mid-way resumes after the last batch it committed (``parameters.after``).
A job the action does not apply to (already retried, or holding a unique key another job
holds now) is skipped and counted.
"""

from __future__ import annotations

from typing import Any

from junction.console import repository
from junction.console.models import AuditEntry
from junction.console.repository import JobFilter
from junction.console.service import BULK_JOB, JOB_ACTIONS
from junction.platform.errors import JunctionError
from junction.platform.jobs import JobContext, registry

BATCH = 200


@registry.job(BULK_JOB, max_attempts=5, timeout_seconds=3600)
async def bulk_jobs(job: JobContext) -> dict[str, Any]:
    audit_id = int((job.payload or {})["audit_id"])
    while True:
        async with job.database.transaction() as session:
            entry = await session.get(AuditEntry, audit_id, with_for_update=True)
            if entry is None or entry.result != "running":
                return {"audit_id": audit_id, "state": "gone or finished"}
            parameters = dict(entry.parameters or {})
            wanted = JobFilter.from_parameters(parameters["filter"])
            ids = await repository.matching_job_ids(
                session, wanted, BATCH, after=int(parameters.get("after", 0))
            )
            if not ids:
                skipped = int(parameters.get("skipped", 0))
                entry.result = "ok"
                entry.detail = f"{entry.done} done, {skipped} skipped"
                return {"audit_id": audit_id, "done": entry.done, "skipped": skipped}
            await _apply(entry, parameters, ids, session)


async def _apply(
    entry: AuditEntry, parameters: dict[str, Any], ids: list[int], session: Any
) -> None:
    perform = JOB_ACTIONS[str(parameters["action"])]
    skipped = int(parameters.get("skipped", 0))
    for job_id in ids:
        try:
            async with session.begin_nested():
                await perform(session, job_id)
            entry.done += 1
        except JunctionError:
            skipped += 1
    entry.parameters = {**parameters, "after": ids[-1], "skipped": skipped}
