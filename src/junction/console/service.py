"""What an operator does from the console, each action recorded in the audit log in the
same transaction as the action itself (a refused action is recorded too, with why).

Actions act through the platform: the job queue's retry, discard and run-now, its queue
pause, the schedules' switch, the integrations' catalog. An action on every job matching a
filter is a background job (``console.bulk_jobs``) that keeps its audit entry's progress.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from junction.console import repository
from junction.console.models import AuditEntry
from junction.console.repository import JobFilter
from junction.console.session import Operator
from junction.platform.db import utcnow
from junction.platform.errors import Conflict, JunctionError, NotFound, ValidationFailed
from junction.platform.integrations import REPLAY_JOB, catalog
from junction.platform.jobs import enqueue, registry
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs import repository as jobs_repository

BULK_JOB = "console.bulk_jobs"
BULK_ACTIONS = ("retry", "discard")
MASK = "••••••"
_PAYLOAD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,4}$")

JobAction = Callable[[AsyncSession, int], Awaitable[Any]]
JOB_ACTIONS: Mapping[str, JobAction] = {
    "retry": job_queue.retry,
    "discard": job_queue.discard,
    "run-now": job_queue.run_now,
}


def record(
    session: AsyncSession,
    operator: Operator,
    action: str,
    target: str,
    result: str,
    detail: str | None = None,
    **extra: Any,
) -> AuditEntry:
    entry = AuditEntry(
        at=utcnow(),
        key_id=operator.key_id,
        key_name=operator.key_name,
        action=action,
        target=target[:500],
        result=result,
        detail=detail,
        done=extra.pop("done", 0),
        **extra,
    )
    session.add(entry)
    return entry


async def audited(
    session: AsyncSession,
    operator: Operator,
    action: str,
    target: str,
    act: Callable[[], Awaitable[str | None]],
) -> str:
    """Run ``act`` and record it; a refusal (a ``JunctionError``) is recorded and re-raised."""
    try:
        detail = await act()
    except JunctionError as exc:
        record(session, operator, action, target, "refused", "; ".join(exc.messages))
        raise
    record(session, operator, action, target, "ok", detail)
    return detail or "done"


async def act_on_job(session: AsyncSession, operator: Operator, action: str, job_id: int) -> str:
    perform = JOB_ACTIONS.get(action)
    if perform is None:
        raise NotFound(f"unknown action {action!r}")

    async def act() -> str:
        job = await perform(session, job_id)
        return f"job {job_id} is now {job.state}"

    return await audited(session, operator, f"job.{action}", f"job {job_id}", act)


async def start_bulk(
    session: AsyncSession, operator: Operator, action: str, wanted: JobFilter
) -> AuditEntry:
    """Record the bulk action and enqueue the job that carries it out."""
    if action not in BULK_ACTIONS:
        raise ValidationFailed(f"bulk action must be one of {', '.join(BULK_ACTIONS)}")
    total = await repository.count_matching(session, wanted)
    entry = record(
        session,
        operator,
        f"jobs.bulk_{action}",
        "jobs matching " + _described(wanted),
        "running",
        total=total,
        parameters={"action": action, "filter": wanted.as_parameters()},
    )
    await session.flush()
    await enqueue(session, BULK_JOB, {"audit_id": entry.id}, created_by=operator.key_id)
    return entry


def _described(wanted: JobFilter) -> str:
    parts = [f"{name}={value}" for name, value in wanted.as_parameters().items() if value]
    return ", ".join(parts) or "every job"


async def set_queue_paused(
    session: AsyncSession, operator: Operator, queue: str, paused: bool
) -> str:
    async def act() -> str:
        await job_queue.set_paused(session, queue, paused)
        return f"queue {queue} {'paused' if paused else 'resumed'}"

    action = "queue.pause" if paused else "queue.resume"
    return await audited(session, operator, action, f"queue {queue}", act)


async def set_schedule_enabled(
    session: AsyncSession, operator: Operator, name: str, enabled: bool
) -> str:
    async def act() -> str:
        if not await jobs_repository.set_schedule_enabled(session, name, enabled):
            raise NotFound(f"schedule {name!r} does not exist")
        return f"schedule {name} {'enabled' if enabled else 'disabled'}"

    action = "schedule.enable" if enabled else "schedule.disable"
    return await audited(session, operator, action, f"schedule {name}", act)


async def run_schedule_now(session: AsyncSession, operator: Operator, name: str) -> str:
    async def act() -> str:
        row = await jobs_repository.schedule_by_name(session, name)
        if row is None:
            raise NotFound(f"schedule {name!r} does not exist")
        definition = registry.schedules.get(name)
        payload = definition.payload if definition else None
        unique_key = definition.unique_key if definition else None
        enqueued = await enqueue(
            session, row.job_name, payload, unique_key=unique_key, created_by=operator.key_id
        )
        if not enqueued.created:
            raise Conflict(f"job {enqueued.id} of this schedule is already queued or running")
        return f"job {enqueued.id} queued"

    return await audited(session, operator, "schedule.run_now", f"schedule {name}", act)


async def trigger_sync(
    session: AsyncSession, operator: Operator, integration: str, label: str
) -> str:
    async def act() -> str:
        trigger = catalog.trigger(integration, label)
        if trigger is None:
            raise NotFound(f"{integration} has no sync {label!r}")
        enqueued = await enqueue(
            session,
            trigger.job_name,
            trigger.payload,
            unique_key=trigger.unique_key,
            created_by=operator.key_id,
        )
        if not enqueued.created:
            raise Conflict(f"job {enqueued.id}, the same sync, is already queued or running")
        return f"job {enqueued.id} queued"

    target = f"integration {integration} ({label})"
    return await audited(session, operator, "integration.sync", target, act)


async def resolve_dead_letter(
    session: AsyncSession, operator: Operator, letter_id: int, how: str
) -> str:
    async def act() -> str:
        letter = await repository.dead_letter(session, letter_id)
        if letter is None or letter.resolved_at is not None:
            raise Conflict(f"dead letter {letter_id} is gone or already resolved")
        if how == "dismiss":
            letter.resolved_at, letter.resolution = utcnow(), "dismissed"
            return "dismissed"
        entry = catalog.entries.get(letter.integration)
        if entry is None or entry.replay is None:
            raise Conflict(f"{letter.integration} cannot replay its dead letters")
        enqueued = await enqueue(
            session, REPLAY_JOB, {"dead_letter_id": letter_id}, created_by=operator.key_id
        )
        return f"replay job {enqueued.id} queued"

    action = "dead_letter.dismiss" if how == "dismiss" else "dead_letter.replay"
    return await audited(session, operator, action, f"dead letter {letter_id}", act)


def payload_filter(text: str) -> dict[str, Any]:
    """``key=value`` pairs, one per line or separated by commas; a value that reads as JSON
    (``42``, ``true``, ``"42"``) is taken as such, any other as a string."""
    wanted: dict[str, Any] = {}
    for part in re.split(r"[,\n]", text):
        if not part.strip():
            continue
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep or not _PAYLOAD_KEY.match(key):
            raise ValidationFailed(
                f"payload filter {part.strip()!r}: write key=value (key: letters, digits, _ "
                "and dots for nested keys)"
            )
        raw = raw.strip()
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if isinstance(value, dict | list):
            raise ValidationFailed(f"payload filter {key}: give a single value")
        wanted[key] = value
    return wanted


def masked(value: Any, keys: frozenset[str]) -> Any:
    """``value`` with the values under any of ``keys`` (any depth, any case) masked."""
    if isinstance(value, dict):
        return {k: MASK if str(k).lower() in keys else masked(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(item, keys) for item in value]
    return value
