"""The wellness API's response shapes (and the query parameters they share)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from junction.platform.integrations import IntegrationRun


class SyncFields(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    external_id: str
    sync_status: str
    sync_errors: str | None
    last_synced_at: datetime | None
    upstream_updated_at: datetime | None
    deleted_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ClientPublic(SyncFields):
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None


class AppointmentPublic(SyncFields):
    client_id: int
    client_external_id: str
    starts_at: datetime
    ends_at: datetime | None
    status: str | None
    service: str | None
    notes: str | None


class RunCountsPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    fetched: int
    created: int
    updated: int
    unchanged: int
    deleted: int
    failed: int = Field(validation_alias="set_aside")


class SyncRunPublic(BaseModel):
    # Read from an IntegrationRun: duration_seconds is derived from its two timestamps and
    # counts from its count columns, by the before-validator below.
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    trigger: str
    mode: str
    status: str
    job_id: int | None
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    cursor_from: datetime | None
    cursor_to: datetime | None
    counts: RunCountsPublic
    error: str | None

    @model_validator(mode="before")
    @classmethod
    def _derive_from_run(cls, run: Any) -> Any:
        if not isinstance(run, IntegrationRun):
            return run
        read = cls.model_fields.keys() - {"duration_seconds", "counts"}
        finished = run.finished_at
        return {name: getattr(run, name) for name in read} | {
            "duration_seconds": (finished - run.started_at).total_seconds() if finished else None,
            "counts": run,
        }


class ScheduleInfo(BaseModel):
    name: str
    cron: str
    last_run_at: datetime | None
    next_run_at: datetime | None


class KindStatus(BaseModel):
    state: str = Field(description="`syncing` while a run holds the lease, else `idle`.")
    counts: dict[str, int] = Field(description="Live records per sync_status.")
    total: int
    deleted: int
    cursor: datetime | None
    last_full_sync_at: datetime | None
    last_run: SyncRunPublic | None
    last_success_at: datetime | None
    next_run_at: datetime | None
    schedule: ScheduleInfo


class SyncStatusPublic(BaseModel):
    clients: KindStatus
    appointments: KindStatus
    dead_letters_unresolved: int
    queue: dict[str, int] = Field(description="Wellness sync jobs queued and running.")


class TriggeredJob(BaseModel):
    kind: str
    job_id: int
    job_token: str = Field(description="Reads the job at GET /api/v1/jobs/{id}?token=...")
    created: bool = Field(description="False: the same sync was already queued or running.")
    full: bool


class TriggerAccepted(BaseModel):
    message: str
    jobs: list[TriggeredJob]
