"""The seed's sync routes (``/api/v1/sync/*``), the run history, the dead letters, and
read access to the synced clients and appointments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from junction.platform.auth import Principal, Scope, require_scope
from junction.platform.db import DbSession, ReadSession
from junction.platform.errors import NotFound, ValidationFailed
from junction.platform.integrations import DeadLetterPublic
from junction.platform.integrations import repository as runs
from junction.platform.jobs import job_token
from junction.platform.pagination import Paginated
from junction.settings import Settings
from junction.wellness import repository
from junction.wellness.models import SyncKind, SyncStatus
from junction.wellness.repository import RecordFilter
from junction.wellness.schemas import (
    AppointmentPublic,
    ClientPublic,
    SyncRunPublic,
    SyncStatusPublic,
    TriggerAccepted,
    TriggeredJob,
)
from junction.wellness.service import INTEGRATION, sync_status, trigger_sync

router = APIRouter(tags=["wellness sync"])

SyncKey = Annotated[Principal, Depends(require_scope(Scope.sync))]
ReadKey = Annotated[Principal, Depends(require_scope(Scope.read))]
Page = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number.")]
PerPage = Annotated[int, Query(ge=1, le=200)]
TRIGGER_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "No API key"},
    403: {"description": "The key lacks the sync scope"},
}


@router.get("/api/v1/sync/status", summary="Counts per status, last and next run per kind")
async def get_sync_status(request: Request, session: ReadSession) -> SyncStatusPublic:
    settings: Settings = request.app.state.settings
    return await sync_status(session, settings)


async def _trigger(
    request: Request,
    session: DbSession,
    principal: Principal,
    kinds: list[SyncKind],
    *,
    force: bool = False,
) -> TriggerAccepted:
    settings: Settings = request.app.state.settings
    secret = settings.secret_key.get_secret_value()
    jobs = []
    for kind in kinds:
        trigger = "force" if force else "manual"
        enqueued = await trigger_sync(
            session, kind, trigger=trigger, force=force, created_by=principal.key_id
        )
        jobs.append(
            TriggeredJob(
                kind=kind.value,
                job_id=enqueued.id,
                job_token=job_token(secret, enqueued.id),
                created=enqueued.created,
                full=force,
            )
        )
    started = [job.kind for job in jobs if job.created]
    message = f"{' and '.join(started)} sync queued" if started else "already queued or running"
    return TriggerAccepted(message=message, jobs=jobs)


@router.post(
    "/api/v1/sync/clients",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Sync clients (incremental when a cursor exists)",
    responses=TRIGGER_RESPONSES,
)
async def sync_clients(request: Request, session: DbSession, key: SyncKey) -> TriggerAccepted:
    return await _trigger(request, session, key, [SyncKind.clients])


@router.post(
    "/api/v1/sync/appointments",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Sync appointments (incremental when a cursor exists)",
    responses=TRIGGER_RESPONSES,
)
async def sync_appointments(request: Request, session: DbSession, key: SyncKey) -> TriggerAccepted:
    return await _trigger(request, session, key, [SyncKind.appointments])


@router.post(
    "/api/v1/sync/all",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Sync clients, then appointments",
    responses=TRIGGER_RESPONSES,
)
async def sync_all(request: Request, session: DbSession, key: SyncKey) -> TriggerAccepted:
    return await _trigger(request, session, key, list(SyncKind))


@router.post(
    "/api/v1/sync/force",
    status_code=status.HTTP_202_ACCEPTED,
    summary="A full sync of both kinds now (after a sync already running)",
    responses=TRIGGER_RESPONSES,
)
async def sync_force(request: Request, session: DbSession, key: SyncKey) -> TriggerAccepted:
    return await _trigger(request, session, key, list(SyncKind), force=True)


@router.get("/api/v1/sync/runs", summary="Run history, newest first")
async def list_runs(
    session: ReadSession,
    _: ReadKey,
    kind: SyncKind | None = None,
    page: Page = 1,
    per_page: PerPage = 50,
) -> Paginated[SyncRunPublic]:
    kinds = [kind.value] if kind else None
    found = await runs.list_runs(
        session, INTEGRATION, kinds=kinds, limit=per_page, offset=(page - 1) * per_page
    )
    total = await runs.count_runs(session, INTEGRATION, kinds=kinds, status=None)
    return Paginated.of([SyncRunPublic.model_validate(run) for run in found], page, per_page, total)


@router.get("/api/v1/sync/runs/{run_id}", summary="One run", responses={404: {}})
async def get_run(run_id: int, session: ReadSession, _: ReadKey) -> SyncRunPublic:
    run = await runs.get_run(session, run_id) if 0 < run_id < 2**53 else None
    if run is None or run.integration != INTEGRATION:
        raise NotFound(f"sync run {run_id} does not exist")
    return SyncRunPublic.model_validate(run)


@router.get("/api/v1/sync/dead_letters", summary="Records set aside, with their errors")
async def list_dead_letters(
    session: ReadSession,
    _: ReadKey,
    kind: SyncKind | None = None,
    run_id: Annotated[int | None, Query(ge=1, lt=2**53)] = None,
    unresolved: Annotated[bool, Query(description="Only those not since synced.")] = False,
    page: Page = 1,
    per_page: PerPage = 50,
) -> Paginated[DeadLetterPublic]:
    total, letters = await runs.list_dead_letters(
        session,
        INTEGRATION,
        kinds=[kind.value] if kind else None,
        run_id=run_id,
        unresolved_only=unresolved,
        limit=per_page,
        offset=(page - 1) * per_page,
    )
    return Paginated.of(
        [DeadLetterPublic.model_validate(x) for x in letters], page, per_page, total
    )


def _record_filter(
    sync_status: SyncStatus | None,
    include_deleted: bool,
    updated_after: datetime | None,
    updated_before: datetime | None,
) -> RecordFilter:
    for name, value in (("updated_after", updated_after), ("updated_before", updated_before)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(f"{name}: must carry a time zone (e.g. Z)")
    return RecordFilter(
        sync_status.value if sync_status else None, include_deleted, updated_after, updated_before
    )


@router.get("/api/v1/clients", summary="Synced clients")
async def list_clients(
    session: ReadSession,
    _: ReadKey,
    sync_status: SyncStatus | None = None,
    include_deleted: bool = False,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    page: Page = 1,
    per_page: PerPage = 50,
) -> Paginated[ClientPublic]:
    filters = _record_filter(sync_status, include_deleted, updated_after, updated_before)
    clients, total = await repository.list_clients(
        session, filters, (page - 1) * per_page, per_page
    )
    return Paginated.of([ClientPublic.model_validate(c) for c in clients], page, per_page, total)


@router.get("/api/v1/appointments", summary="Synced appointments, by start time")
async def list_appointments(
    session: ReadSession,
    _: ReadKey,
    sync_status: SyncStatus | None = None,
    include_deleted: bool = False,
    client_external_id: Annotated[str | None, Query(max_length=200)] = None,
    starts_after: datetime | None = None,
    starts_before: datetime | None = None,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    page: Page = 1,
    per_page: PerPage = 50,
) -> Paginated[AppointmentPublic]:
    filters = _record_filter(sync_status, include_deleted, updated_after, updated_before)
    for name, value in (("starts_after", starts_after), ("starts_before", starts_before)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(f"{name}: must carry a time zone (e.g. Z)")
    appointments, total = await repository.list_appointments(
        session,
        filters,
        client_external_id,
        starts_after,
        starts_before,
        (page - 1) * per_page,
        per_page,
    )
    return Paginated.of(
        [AppointmentPublic.model_validate(a) for a in appointments], page, per_page, total
    )
