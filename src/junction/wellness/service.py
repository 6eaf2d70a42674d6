"""The sync engine: page through the wellness API and land each page in the database.

Unlike a request's service, a sync commits as it goes, one transaction per page: a crash
keeps every page that landed, memory stays bounded, and the database is never locked for
the length of a run. What makes that safe:

* **One run per kind at a time.** A run holds the kind's lease (the sync kit's runner),
  extended with every page it commits; a run whose worker died is taken over once its lease
  expires, and is recorded as interrupted.
* **Upserts on external_id**, so a page written twice lands once. A content hash counts
  unchanged records without rewriting them.
* **The cursor moves only with the last write.** It is upstream's clock when the run's first
  page was served, saved in the transaction that finishes the run: everything changed later
  is fetched next time (``updated_since`` is inclusive, so ties at the boundary come again
  and count as unchanged), and a run that dies leaves the old cursor, so the next run
  fetches what it missed.
* **Deletes**: tombstones in a change feed mark records deleted; a full run marks deleted
  every record it did not see. Deleted records stay, marked, out of the live lists.
* **A bad record goes to the dead letters** with its error, and the run goes on. A failed
  call fails the run, says why, and leaves the data of the last good run in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import aclosing
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.db import Database, utcnow
from junction.platform.http import CredentialsRejected, NotFoundUpstream, OutboundError
from junction.platform.integrations import (
    Run,
    RunCounts,
    RunStatus,
    SetAside,
    add_counts,
    ignore_run,
    lease_name,
    open_run,
    read_ahead,
    resolve_dead_letters,
    set_aside,
    wait_for_lease,
)
from junction.platform.integrations import RunReport as KitRunReport
from junction.platform.integrations import repository as runs
from junction.platform.integrations.lease import lease_holder
from junction.platform.integrations.records import RecordRejected
from junction.platform.jobs import Enqueued, enqueue
from junction.settings import Settings
from junction.wellness import repository
from junction.wellness.client import (
    AppointmentRecord,
    ClientRecord,
    MalformedResponse,
    RecordParser,
    Tombstone,
    WellnessApi,
    WellnessNotConfigured,
)
from junction.wellness.models import Appointment, Client, RunMode, SyncKind, SyncStatus
from junction.wellness.schemas import KindStatus, ScheduleInfo, SyncRunPublic, SyncStatusPublic

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SyncRequest:
    kind: SyncKind
    trigger: str
    full: bool = False
    job_id: int | None = None


INTEGRATION = "wellness"
COUNT_NAMES = {"set_aside": "failed"}
"""The run's counts as this domain has always published them."""


@dataclass
class RunReport(KitRunReport):
    """The kit's report, and what the engine learns on the way."""

    unidentified: int = 0
    """Records set aside without an id: a full run then cannot tell deleted from unreadable."""

    def as_message(self, count_names: Mapping[str, str] | None = None) -> dict[str, Any]:
        return super().as_message(count_names or COUNT_NAMES)


class SyncEngine:
    """Runs of one kind; ``observe`` is told of each committed step (it must not block)."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        observe: Callable[[RunReport], None] = ignore_run,
        api_factory: Callable[[Settings], WellnessApi] = WellnessApi,
    ) -> None:
        self.database = database
        self.settings = settings
        self.observe = observe
        self.api_factory = api_factory
        self.parser = RecordParser(settings.wellness_api_timezone)

    async def run(self, request: SyncRequest, wait_seconds: float | None = None) -> RunReport:
        """Run one sync of ``request.kind``; a failure is recorded in the run, not raised.
        Waits for a run of the kind already going (at most ``wait_seconds``)."""
        busy = f"a {request.kind} sync is already running"
        run, cursor = await wait_for_lease(lambda: self._start(request), wait_seconds, busy)
        self.observe(run.report)

        async def pull() -> None:
            async with self.api_factory(self.settings) as api:
                await self._pull(api, run, cursor)

        return await run.guard(
            pull, expected=(OutboundError,), describe=describe_failure, is_transient=is_transient
        )

    async def _start(self, request: SyncRequest) -> tuple[Run[RunReport], datetime | None]:
        """Open the run and take the kind's lease in one commit; ``LeaseHeld`` while it is
        held (the run opened here is then rolled back with the rest)."""
        async with self.database.transaction() as session:
            state = await repository.locked_state(session, request.kind.value)
            incremental = (
                not request.full and self.settings.wellness_incremental and state.cursor is not None
            )
            cursor = state.cursor if incremental else None
            opened = await open_run(
                session,
                INTEGRATION,
                request.kind.value,
                request.trigger,
                mode=(RunMode.incremental if incremental else RunMode.full).value,
                job_id=request.job_id,
                cursor_from=cursor,
            )
            run = Run(self.database, RunReport(**vars(opened)), self.observe, _lease(self.settings))
            await run.take_lease(session)
        log.info("wellness sync started", run_id=opened.run_id, kind=opened.kind, mode=opened.mode)
        return run, cursor

    async def _pull(self, api: WellnessApi, run: Run[RunReport], cursor: datetime | None) -> None:
        report = run.report
        seen: set[str] = set()
        next_cursor: datetime | None = None
        first = True
        async with aclosing(read_ahead(api.pages(report.kind, cursor))) as pages:
            async for page in pages:
                if first:
                    next_cursor = page.server_time
                    if cursor is not None and not page.filtered_since:
                        report.mode = RunMode.full.value  # the API ignored updated_since
                    first = False
                async with run.step() as session:
                    counts = await self._write_page(session, report, page.records, seen)
                    await add_counts(session, report, counts)
        await self._finish(run, seen, next_cursor)

    async def _write_page(
        self, session: AsyncSession, report: RunReport, raw_records: list[Any], seen: set[str]
    ) -> RunCounts:
        kind = SyncKind(report.kind)
        model = Client if kind is SyncKind.clients else Appointment
        parse = self.parser.client if kind is SyncKind.clients else self.parser.appointment
        counts = RunCounts(fetched=len(raw_records))
        records: dict[str, ClientRecord | AppointmentRecord] = {}
        tombstones: list[str] = []
        rejected: list[tuple[Any, RecordRejected]] = []
        for raw in raw_records:
            try:
                record = parse(raw)
            except RecordRejected as exc:
                rejected.append((raw, exc))
                # Still upstream, only unreadable: a full run must not sweep it as deleted.
                if exc.external_id is None:
                    report.unidentified += 1
                else:
                    seen.add(exc.external_id)
                continue
            seen.add(record.external_id)
            if isinstance(record, Tombstone):
                tombstones.append(record.external_id)
                records.pop(record.external_id, None)
            else:
                records[record.external_id] = record
        now = utcnow()
        written = await self._upsert(session, model, list(records.values()), counts, now)
        if tombstones:
            counts.deleted += await repository.mark_deleted(session, model, tombstones, now)
        await self._set_aside(session, report, model, rejected, counts, now)
        await resolve_dead_letters(session, INTEGRATION, report.kind, written, now)
        return counts

    async def replay(self, session: AsyncSession, kind: SyncKind, raw: Any) -> None:
        """One set-aside record through the mapping again (after a fix, say): stored as a
        sync would store it, or refused again with ``RecordRejected``."""
        model = Client if kind is SyncKind.clients else Appointment
        parse = self.parser.client if kind is SyncKind.clients else self.parser.appointment
        record = parse(raw)
        now = utcnow()
        if isinstance(record, Tombstone):
            await repository.mark_deleted(session, model, [record.external_id], now)
        else:
            await self._upsert(session, model, [record], RunCounts(), now)

    async def _upsert(
        self,
        session: AsyncSession,
        model: type[Client] | type[Appointment],
        records: list[ClientRecord | AppointmentRecord],
        counts: RunCounts,
        now: datetime,
    ) -> list[str]:
        known = await repository.known_records(session, model, [r.external_id for r in records])
        changed: list[tuple[ClientRecord | AppointmentRecord, str]] = []
        for record in records:
            digest = record.content_hash()
            previous = known.get(record.external_id)
            if previous is None:
                counts.created += 1
            elif (
                previous.content_hash == digest
                and previous.sync_status == SyncStatus.synced.value
                and not previous.deleted
            ):
                counts.unchanged += 1
                continue
            else:
                counts.updated += 1
            changed.append((record, digest))
        if model is Client:
            rows = [_client_row(r, d, now) for r, d in changed if isinstance(r, ClientRecord)]
        else:
            rows = await self._appointment_rows(session, changed, now)
        await repository.upsert(session, model, rows)
        return [record.external_id for record, _ in changed]

    async def _appointment_rows(
        self,
        session: AsyncSession,
        changed: list[tuple[ClientRecord | AppointmentRecord, str]],
        now: datetime,
    ) -> list[dict[str, Any]]:
        appointments = [(r, d) for r, d in changed if isinstance(r, AppointmentRecord)]
        wanted = sorted({r.client_external_id for r, _ in appointments})
        ids = await repository.client_ids(session, wanted)
        missing = {
            r.client_external_id: r for r, _ in appointments if r.client_external_id not in ids
        }
        if missing:
            await repository.insert_placeholder_clients(
                session, [_placeholder_client(r, now) for r in missing.values()]
            )
            ids.update(await repository.client_ids(session, sorted(missing)))
        return [_appointment_row(r, d, ids[r.client_external_id], now) for r, d in appointments]

    async def _set_aside(
        self,
        session: AsyncSession,
        report: RunReport,
        model: type[Client] | type[Appointment],
        rejected: list[tuple[Any, RecordRejected]],
        counts: RunCounts,
        now: datetime,
    ) -> None:
        if not rejected:
            return
        counts.set_aside += len(rejected)
        await set_aside(
            session,
            report,
            [SetAside(exc.external_id, raw, str(exc)) for raw, exc in rejected],
            now,
        )
        errors = {exc.external_id: str(exc) for _, exc in rejected if exc.external_id}
        await repository.mark_rejected(session, model, errors, now)
        log.warning("wellness records set aside", run_id=report.run_id, count=len(rejected))

    async def _finish(self, run: Run[RunReport], seen: set[str], cursor: datetime | None) -> None:
        """Sweep (full runs), save the cursor, release the lease and close the run: one commit."""
        report = run.report
        model = Client if report.kind == SyncKind.clients.value else Appointment
        async with run.step() as session:
            now = utcnow()
            swept = 0
            if report.mode == RunMode.full.value and report.unidentified:
                report.error = (
                    f"deletions were not swept: {report.unidentified} records came without "
                    "an id, so records missing from the list may only be unreadable"
                )
            elif report.mode == RunMode.full.value:
                live = await repository.live_external_ids(session, model)
                gone = [external_id for external_id in live if external_id not in seen]
                swept = await repository.mark_deleted(session, model, gone, now)
            state_values: dict[str, Any] = {"cursor": cursor}
            if report.mode == RunMode.full.value:
                state_values["last_full_sync_at"] = now
            await repository.save_cursor(session, report.kind, **state_values)
            await run.succeed(session, RunCounts(deleted=swept), cursor_to=cursor)
        log.info("wellness sync finished", run_id=report.run_id, **asdict(report.counts))


def describe_failure(exc: Exception) -> str:
    """Why a run failed, in words an operator can act on."""
    if isinstance(exc, CredentialsRejected):
        return (
            f"the wellness API rejected the credentials (HTTP {exc.status}): check "
            "JUNCTION_WELLNESS_API_KEY (or MOCK_API_KEY)"
        )
    if isinstance(exc, NotFoundUpstream):
        return f"the wellness API answered 404: check JUNCTION_WELLNESS_API_URL ({exc})"
    return str(exc)


def is_transient(exc: Exception) -> bool:
    """Worth another attempt later: not wrong credentials, a wrong URL or a broken API."""
    permanent = (
        CredentialsRejected,
        NotFoundUpstream,
        WellnessNotConfigured,
        MalformedResponse,
    )
    return not isinstance(exc, permanent)


def _lease(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.wellness_sync_lease_seconds)


def _client_row(record: ClientRecord, digest: str, now: datetime) -> dict[str, Any]:
    return {
        "external_id": record.external_id,
        "first_name": record.first_name,
        "last_name": record.last_name,
        "email": record.email,
        "phone": record.phone,
        **_synced_columns(record.updated_at, digest, now),
    }


def _appointment_row(
    record: AppointmentRecord, digest: str, client_id: int, now: datetime
) -> dict[str, Any]:
    return {
        "external_id": record.external_id,
        "client_id": client_id,
        "client_external_id": record.client_external_id,
        "starts_at": record.starts_at,
        "ends_at": record.ends_at,
        "status": record.status,
        "service": record.service,
        "notes": record.notes,
        **_synced_columns(record.updated_at, digest, now),
    }


def _synced_columns(
    upstream_updated_at: datetime | None, digest: str, now: datetime
) -> dict[str, Any]:
    return {
        "content_hash": digest,
        "upstream_updated_at": upstream_updated_at,
        "deleted_at": None,
        "last_synced_at": now,
        "sync_status": SyncStatus.synced.value,
        "sync_errors": None,
        "created_at": now,
        "updated_at": now,
    }


def _placeholder_client(record: AppointmentRecord, now: datetime) -> dict[str, Any]:
    return {
        "external_id": record.client_external_id,
        "first_name": record.client_first_name,
        "last_name": record.client_last_name,
        "sync_status": SyncStatus.pending.value,
        "created_at": now,
        "updated_at": now,
    }


# Triggers and status ----------------------------------------------------------------------

SYNC_JOB = "wellness.sync"
SCHEDULED_SYNC_JOB = "wellness.scheduled_sync"
SCHEDULE_NAMES = {kind: f"wellness.{kind.value}" for kind in SyncKind}


def sync_unique_key(kind: SyncKind, force: bool) -> str:
    """One queued-or-running sync per kind; a forced one may wait behind it."""
    return f"{SYNC_JOB}:{kind.value}" + (":force" if force else "")


async def trigger_sync(
    session: AsyncSession,
    kind: SyncKind,
    *,
    trigger: str,
    full: bool = False,
    force: bool = False,
    created_by: str | None = None,
) -> Enqueued:
    """Enqueue a sync in the caller's transaction, unless the same one is queued or running."""
    return await enqueue(
        session,
        SYNC_JOB,
        {"kind": kind.value, "trigger": trigger, "full": full or force},
        unique_key=sync_unique_key(kind, force),
        created_by=created_by,
    )


async def sync_status(session: AsyncSession, settings: Settings) -> SyncStatusPublic:
    states = await repository.sync_states(session)
    schedules = await repository.schedules(session, list(SCHEDULE_NAMES.values()))
    crons = {
        SyncKind.clients: settings.wellness_clients_cron,
        SyncKind.appointments: settings.wellness_appointments_cron,
    }
    kinds: dict[str, KindStatus] = {}
    for kind in SyncKind:
        model = Client if kind is SyncKind.clients else Appointment
        counts, deleted = await repository.status_counts(session, model)
        state = states.get(kind.value)
        holder, _ = await lease_holder(session, lease_name(INTEGRATION, kind.value))
        last = await runs.last_run(session, INTEGRATION, kind.value)
        succeeded = await runs.last_run(session, INTEGRATION, kind.value, RunStatus.succeeded)
        stored = schedules.get(SCHEDULE_NAMES[kind])
        kinds[kind.value] = KindStatus(
            state="syncing" if holder is not None else "idle",
            counts=counts,
            total=sum(counts.values()),
            deleted=deleted,
            cursor=state.cursor if state else None,
            last_full_sync_at=state.last_full_sync_at if state else None,
            last_run=SyncRunPublic.model_validate(last) if last else None,
            last_success_at=succeeded.finished_at if succeeded else None,
            next_run_at=stored.next_run_at if stored else None,
            schedule=ScheduleInfo(
                name=SCHEDULE_NAMES[kind],
                cron=crons[kind],
                last_run_at=stored.last_run_at if stored else None,
                next_run_at=stored.next_run_at if stored else None,
            ),
        )
    unresolved = await runs.unresolved_dead_letters(session)
    return SyncStatusPublic(
        clients=kinds[SyncKind.clients.value],
        appointments=kinds[SyncKind.appointments.value],
        dead_letters_unresolved=sum(
            n for (integration, _), n in unresolved.items() if integration == INTEGRATION
        ),
        queue=await repository.active_jobs(session, SYNC_JOB),
    )
