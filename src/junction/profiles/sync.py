"""The Airtable sync of users: claim a batch of pending users, write it, record the outcome.

A sync job drains: it leases up to ``airtable_batch_size`` users that Airtable has not
seen in their latest version (its own user first), writes them in one request (deletes of
removed users in another), records the result, and goes on while work remains and its
time budget lasts. Several jobs drain at once without writing the same user twice, so a
burst of creates is written ten records per request at the throttle's pace.

A failed write is recorded on each user of the batch (status, attempts, last error, next
attempt with backoff); the job of a user whose write failed fails too, so the job record
shows the error and the job system retries it. A 429 is not the users' fault: the batch
is released untouched and the throttle waits out the penalty.

A drain that writes anything is a run of the sync kit (integration ``airtable``, kind
``users``): its counts, its error, and a dead letter for each user Airtable refused for
good (with what was sent), published live on SyncStatusChannel. Users are claimed row by
row (``sync_claimed_until``) rather than under one lease: several drains run at once, each
on users the others have not claimed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.cache import Cache
from junction.platform.db import Database, utcnow
from junction.platform.integrations import (
    Run,
    RunCounts,
    RunReport,
    SetAside,
    UpstreamThrottle,
    add_counts,
    ignore_run,
    observe_after_commit,
    open_run,
    resolve_dead_letters,
    set_aside,
)
from junction.platform.realtime import Broker, publish_after_commit
from junction.platform.storage import Storage
from junction.profiles import repository
from junction.profiles.airtable import (
    AirtableError,
    AirtableNotConfigured,
    AirtableRateLimited,
    AirtableUser,
    AirtableUsers,
    airtable_connection,
)
from junction.profiles.channels import USER_UPDATES_STREAM
from junction.profiles.models import SyncStatus, User
from junction.profiles.service import CACHE_NAMESPACE, sync_status_message
from junction.settings import Settings

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 8
DRAIN_BUDGET_SECONDS = 60.0


INTEGRATION = "airtable"
KIND = "users"


@dataclass
class DrainReport:
    written: int = 0
    deleted: int = 0
    requests: int = 0
    rate_limited: int = 0
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "deleted": self.deleted,
            "requests": self.requests,
            "rate_limited": self.rate_limited,
            "failures": self.failures[-5:],
        }


class OwnUserFailed(Exception):
    """The write of the job's own user failed; the job fails so that it is retried."""


@dataclass(frozen=True)
class _Claimed:
    id: int
    uuid: str
    version: int
    deleted: bool
    record_id: str | None
    may_exist: bool
    airtable: AirtableUser | None


class UserSync:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        storage: Storage,
        *,
        cache: Cache | None,
        broker: Broker | None,
        redis: Redis | None,
        observe: Callable[[RunReport], None] = ignore_run,
    ) -> None:
        self.observe = observe
        self.run: Run[RunReport] | None = None
        self.database = database
        self.settings = settings
        self.storage = storage
        self.cache = cache
        self.broker = broker
        connection = airtable_connection(settings)
        if connection is None:
            raise AirtableNotConfigured("set AIRTABLE_API_KEY and AIRTABLE_BASE_ID")
        throttle = UpstreamThrottle(
            "airtable", connection.base_id, settings.airtable_requests_per_second, redis
        )
        self.airtable = AirtableUsers(connection, settings, throttle)
        self.lease = timedelta(
            seconds=settings.airtable_rate_limit_wait_seconds
            + 3 * settings.airtable_timeout_seconds
            + 30
        )

    async def drain(self, own_user_id: int | None) -> DrainReport:
        report = DrainReport()
        deadline = time.monotonic() + DRAIN_BUDGET_SECONDS
        first = own_user_id
        own_failed: str | None = None
        async with self.airtable:
            while time.monotonic() < deadline:
                batch = await self._claim(first)
                if not batch:
                    break
                error = await self._write(batch, report)
                if error is not None and own_user_id in {claimed.id for claimed in batch}:
                    own_failed = error
                first = None
        await self._finish_run(report)
        if own_failed is not None:
            raise OwnUserFailed(own_failed)
        return report

    async def _record(self, session: AsyncSession, counts: RunCounts) -> None:
        """Count into the drain's run, opened with its first batch."""
        if self.run is None:
            opened = await open_run(session, INTEGRATION, KIND, "job")
            self.run = Run(self.database, opened, self.observe)
        await add_counts(session, self.run.report, counts)
        observe_after_commit(session, self.run.report, self.observe)

    async def _finish_run(self, report: DrainReport) -> None:
        if self.run is None:
            return
        written = report.written + report.deleted
        if report.failures:
            await self.run.fail(report.failures[-1], notes=report.failures, rows_written=written)
            return
        async with self.run.step() as session:
            await self.run.succeed(session, rows_written=written)

    async def _claim(self, first: int | None) -> list[_Claimed]:
        async with self.database.transaction() as session:
            users = await repository.claim_for_sync(
                session, first=first, limit=self.settings.airtable_batch_size, lease=self.lease
            )
            return [await self._snapshot(user) for user in users]

    async def _snapshot(self, user: User) -> _Claimed:
        deleted = user.deleted_at is not None
        return _Claimed(
            id=user.id,
            uuid=user.uuid,
            version=user.sync_version,
            deleted=deleted,
            record_id=user.airtable_record_id,
            may_exist=user.synced_version > 0 or user.sync_attempts > 0,
            airtable=None if deleted else await self._airtable_user(user),
        )

    async def _airtable_user(self, user: User) -> AirtableUser:
        file_url = None
        if user.file_key is not None:
            file_url = await self.storage.url(
                user.file_key,
                ttl_seconds=self.settings.airtable_file_url_ttl_seconds,
                filename=user.file_name,
            )
        return AirtableUser(
            junction_id=user.uuid,
            first_name=user.first_name,
            last_name=user.last_name,
            email=user.email,
            date_of_birth=user.date_of_birth,
            file_url=file_url,
            file_name=user.file_name,
        )

    async def _write(self, batch: Sequence[_Claimed], report: DrainReport) -> str | None:
        """Write one batch and record the outcome; answers the error, if any."""
        upserts = [claimed for claimed in batch if claimed.airtable is not None]
        removals = [claimed for claimed in batch if claimed.deleted]
        try:
            record_ids: dict[str, str] = {}
            if upserts:
                report.requests += 1
                record_ids = await self.airtable.upsert(
                    [claimed.airtable for claimed in upserts if claimed.airtable]
                )
            if removals:
                await self._delete_records(removals, report)
        except AirtableRateLimited as exc:
            report.rate_limited += 1
            await self._release(batch, str(exc))
            return None
        except AirtableError as exc:
            report.failures.append(str(exc))
            await self._failed(batch, exc)
            return str(exc)
        await self._succeeded(upserts, removals, record_ids, report)
        return None

    async def _delete_records(self, removals: Sequence[_Claimed], report: DrainReport) -> None:
        record_ids = []
        for claimed in removals:
            record_id = claimed.record_id
            if record_id is None and claimed.may_exist:
                report.requests += 1
                record_id = await self.airtable.find(claimed.uuid)
            if record_id is not None:
                record_ids.append(record_id)
        if record_ids:
            report.requests += 1
            await self.airtable.delete(record_ids)

    async def _succeeded(
        self,
        upserts: Sequence[_Claimed],
        removals: Sequence[_Claimed],
        record_ids: dict[str, str],
        report: DrainReport,
    ) -> None:
        now = utcnow()
        async with self.database.transaction() as session:
            users = {
                user.id: user
                for user in await repository.load(
                    session, [claimed.id for claimed in (*upserts, *removals)]
                )
            }
            counts = RunCounts(fetched=len(upserts) + len(removals))
            for claimed in upserts:
                user = users.get(claimed.id)
                if user is None:
                    continue
                user.airtable_record_id = record_ids.get(claimed.uuid, user.airtable_record_id)
                self._mark_synced(session, user, claimed.version, now)
                report.written += 1
                if claimed.record_id is None:
                    counts.created += 1
                else:
                    counts.updated += 1
            # A tombstone never changes again (no route finds it), so its row can go.
            for claimed in removals:
                user = users.get(claimed.id)
                if user is not None:
                    await session.delete(user)
                    report.deleted += 1
                    counts.deleted += 1
            await self._record(session, counts)
            await resolve_dead_letters(
                session, INTEGRATION, KIND, [claimed.uuid for claimed in upserts], now
            )
        await self._invalidate()

    def _mark_synced(self, session: AsyncSession, user: User, version: int, now: datetime) -> None:
        user.synced_version = max(user.synced_version, version)
        user.synced_at = now
        user.sync_attempts = 0
        user.sync_error = None
        user.sync_next_attempt_at = None
        user.sync_claimed_until = None
        done = user.synced_version >= user.sync_version
        user.sync_status = (SyncStatus.synced if done else SyncStatus.pending).value
        if self.broker is not None and user.deleted_at is None:
            publish_after_commit(
                session, self.broker, USER_UPDATES_STREAM, sync_status_message(user.uuid, now)
            )

    async def _failed(self, batch: Sequence[_Claimed], exc: AirtableError) -> None:
        now = utcnow()
        sent = {claimed.id: claimed for claimed in batch}
        refused: list[SetAside] = []
        async with self.database.transaction() as session:
            for user in await repository.load(session, list(sent)):
                user.sync_attempts += 1
                user.sync_error = str(exc)[:2000]
                user.sync_claimed_until = None
                gave_up = not exc.retryable or user.sync_attempts >= MAX_ATTEMPTS
                user.sync_status = (SyncStatus.failed if gave_up else SyncStatus.retrying).value
                user.sync_next_attempt_at = now + timedelta(seconds=_backoff(user.sync_attempts))
                if gave_up:
                    refused.append(SetAside(user.uuid, _sent(sent[user.id]), str(exc)[:2000]))
            await self._record(session, RunCounts(fetched=len(batch), set_aside=len(refused)))
            if refused and self.run is not None:
                await set_aside(session, self.run.report, refused, now)
        log.warning("airtable sync failed", users=len(batch), error=str(exc))
        await self._invalidate()

    async def _release(self, batch: Sequence[_Claimed], reason: str) -> None:
        async with self.database.transaction() as session:
            for user in await repository.load(session, [claimed.id for claimed in batch]):
                user.sync_claimed_until = None
                user.sync_error = reason[:2000]
        log.info("airtable rate limited; batch released", users=len(batch))

    async def _invalidate(self) -> None:
        if self.cache is not None:
            await self.cache.invalidate(CACHE_NAMESPACE)


def _sent(claimed: _Claimed) -> dict[str, Any]:
    """What was sent for the user, as the dead letter's payload."""
    if claimed.airtable is None:
        return {"junction_id": claimed.uuid, "deleted": True}
    return {**asdict(claimed.airtable), "date_of_birth": claimed.airtable.date_of_birth.isoformat()}


def _backoff(attempt: int) -> float:
    """1, 2, 4 ... seconds, at most five minutes: shorter than the sync job's own retry
    delays, so a retried job finds its user due again."""
    return float(min(300, 2 ** (attempt - 1)))
