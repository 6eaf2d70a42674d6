"""Business rules of the events domain: persisting a feed with history, and one sync run.

``persist_feed`` takes the caller's session and never commits: one feed is one
transaction, so a feed that turns out malformed halfway changes nothing. ``run_sync`` is
the one function here that owns transactions, because a run must be recorded (started,
failed) even when the feed's own transaction rolls back. The run is the sync kit's
(integration ``events``, kind ``feed``); skipped records go to the kit's dead letters.

A slot is written only when its content hash changed: an unchanged feed writes no row at
all. Events and slots that vanish from the feed are left as they were, still served.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, tzinfo
from typing import IO, Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from junction.events import provider, repository
from junction.events.feed import FeedError, FeedEvent, FeedItem, FeedSlot, SkippedRecord, parse_feed
from junction.events.models import Event, Slot
from junction.events.schemas import (
    EventPublic,
    EventsPage,
    EventSyncRunPublic,
    SearchEvent,
    SearchEvents,
)
from junction.platform.db import Database, utcnow
from junction.platform.http import OutboundError
from junction.platform.integrations import (
    Run,
    RunCounts,
    RunFailed,
    RunReport,
    SetAside,
    ignore_run,
    observe_after_commit,
    open_run,
    set_aside,
)
from junction.platform.integrations import repository as runs
from junction.platform.integrations.runs import MAX_NOTES
from junction.platform.pagination import PaginationMeta
from junction.settings import Settings

log = structlog.get_logger(__name__)

INTEGRATION = "events"
FEED_KIND = "feed"
BATCH_SLOTS = 500

Progress = Callable[["SyncReport"], None]


@dataclass
class SyncReport:
    """What one feed did. The counts' created / updated / unchanged count slots, the unit of
    history; set_aside counts the records skipped."""

    counts: RunCounts = field(default_factory=RunCounts)
    events_seen: int = 0
    events_created: int = 0
    events_updated: int = 0
    rows_written: int = 0
    errors: list[str] = field(default_factory=list)

    def skip(self, record: SkippedRecord) -> None:
        self.counts.set_aside += 1
        if len(self.errors) < MAX_NOTES:
            self.errors.append(record.describe())


def dead_letter(record: SkippedRecord) -> SetAside:
    """A skipped record as the kit sets it aside: what and where it was, and the message
    the run reports for it."""
    payload = {"record": record.kind, "parent": record.parent, "line": record.line}
    return SetAside(record.external_id, payload, record.describe())


def _digest(parts: Any) -> str:
    encoded = json.dumps(parts, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


def event_hash(event: FeedEvent) -> str:
    return _digest([event.title, event.sell_mode, event.organizer_company_id])


def slot_hash(slot: FeedSlot) -> str:
    """Of the slot and its zones; zone order in the feed does not matter, duplicates do."""
    zones = sorted(
        (z.external_id, z.name, z.capacity, str(z.price), z.numbered) for z in slot.zones
    )
    moments = [slot.starts_at, slot.ends_at, slot.sell_from, slot.sell_to]
    return _digest([[m.isoformat() for m in moments], slot.sold_out, zones])


class FeedPersister:
    """Writes batches of one feed; remembers which base events it has seen in this feed.
    With a ``run``, each batch's skipped records are set aside under it."""

    def __init__(
        self, session: AsyncSession, report: SyncReport, run: RunReport | None = None
    ) -> None:
        self.session = session
        self.report = report
        self.run = run
        self.now = utcnow()
        self.seen_events: set[str] = set()
        self.skipped: list[SkippedRecord] = []

    def skip(self, record: SkippedRecord) -> None:
        self.report.skip(record)
        self.skipped.append(record)

    async def persist(self, items: list[FeedItem]) -> None:
        events: list[FeedEvent] = []
        for item in items:
            if isinstance(item, SkippedRecord):
                self.skip(item)
            elif item.external_id in self.seen_events:
                self.skip(
                    SkippedRecord("base event", item.external_id, None, "listed twice in the feed")
                )
            else:
                self.seen_events.add(item.external_id)
                events.append(item)
        if events:
            event_ids = await self._persist_events(events)
            await self._persist_slots(events, event_ids)
        if self.run is not None and self.skipped:
            records = [dead_letter(record) for record in self.skipped]
            await set_aside(self.session, self.run, records, self.now)
        self.skipped.clear()

    async def _persist_events(self, events: list[FeedEvent]) -> dict[str, int]:
        stored = await repository.events_by_external_id(
            self.session, [event.external_id for event in events]
        )
        new_rows: list[dict[str, Any]] = []
        changed_rows: list[dict[str, Any]] = []
        for event in events:
            self.report.events_seen += 1
            for record in event.skipped:
                self.skip(record)
            digest = event_hash(event)
            found = stored.get(event.external_id)
            online = event.sell_mode == "online"
            if found is None:
                new_rows.append(self._event_row(event, digest, online))
            elif found.content_hash != digest or (online and not found.ever_online):
                row = self._event_row(event, digest, online or found.ever_online)
                changed_rows.append({"id": found.id, **row})
        ids = await repository.insert_returning_ids(self.session, Event, new_rows)
        await repository.update_events(self.session, changed_rows)
        self.report.events_created += len(new_rows)
        self.report.events_updated += len(changed_rows)
        self.report.rows_written += len(new_rows) + len(changed_rows)
        known = {external_id: found.id for external_id, found in stored.items()}
        for row, new_id in zip(new_rows, ids, strict=True):
            known[row["external_id"]] = new_id
        return known

    def _event_row(self, event: FeedEvent, digest: str, ever_online: bool) -> dict[str, Any]:
        row: dict[str, Any] = {
            "external_id": event.external_id,
            "title": event.title,
            "sell_mode": event.sell_mode,
            "organizer_company_id": event.organizer_company_id,
            "ever_online": ever_online,
            "content_hash": digest,
            "updated_at": self.now,
        }
        return row

    async def _persist_slots(self, events: list[FeedEvent], event_ids: dict[str, int]) -> None:
        current = await repository.current_slots(self.session, list(event_ids.values()))
        retired: list[int] = []
        versions: list[tuple[dict[str, Any], FeedSlot]] = []
        for event in events:
            event_id = event_ids[event.external_id]
            listed: set[str] = set()
            for slot in event.slots:
                if slot.external_id in listed:
                    parent = f"base event {event.external_id}"
                    self.skip(SkippedRecord("slot", slot.external_id, None, "listed twice", parent))
                    continue
                listed.add(slot.external_id)
                digest = slot_hash(slot)
                found = current.get((event_id, slot.external_id))
                if found is not None and found.content_hash == digest:
                    self.report.counts.unchanged += 1
                    continue
                if found is None:
                    self.report.counts.created += 1
                else:
                    self.report.counts.updated += 1
                    retired.append(found.id)
                slot_uuid = found.uuid if found is not None else uuid.uuid4()
                versions.append((self._slot_row(event_id, slot, slot_uuid, digest), slot))
        await repository.retire_slots(self.session, retired)
        await self._insert_versions(versions)
        self.report.rows_written += len(retired)

    def _slot_row(
        self, event_id: int, slot: FeedSlot, slot_uuid: uuid.UUID, digest: str
    ) -> dict[str, Any]:
        return {
            "uuid": slot_uuid,
            "event_id": event_id,
            "external_id": slot.external_id,
            "starts_at": slot.starts_at,
            "ends_at": slot.ends_at,
            "sell_from": slot.sell_from,
            "sell_to": slot.sell_to,
            "sold_out": slot.sold_out,
            "current": True,
            "content_hash": digest,
            "created_at": self.now,
            "updated_at": self.now,
        }

    async def _insert_versions(self, versions: list[tuple[dict[str, Any], FeedSlot]]) -> None:
        rows = [row for row, _ in versions]
        slot_ids = await repository.insert_returning_ids(self.session, Slot, rows)
        zones = [
            {
                "uuid": uuid.uuid4(),
                "slot_id": slot_id,
                "position": position,
                "external_id": zone.external_id,
                "name": zone.name,
                "capacity": zone.capacity,
                "price": zone.price,
                "numbered": zone.numbered,
                "created_at": self.now,
                "updated_at": self.now,
            }
            for slot_id, (_, slot) in zip(slot_ids, versions, strict=True)
            for position, zone in enumerate(slot.zones)
        ]
        await repository.insert_zones(self.session, zones)
        self.report.rows_written += len(rows) + len(zones)


def _take_batch(items: Iterator[FeedItem], batch_slots: int) -> list[FeedItem]:
    batch: list[FeedItem] = []
    slots = 0
    for item in items:
        batch.append(item)
        slots += len(item.slots) + 1 if isinstance(item, FeedEvent) else 1
        if slots >= batch_slots:
            break
    return batch


async def parsed_batches(
    source: IO[bytes], zone: tzinfo, batch_slots: int = BATCH_SLOTS
) -> AsyncIterator[list[FeedItem]]:
    """The feed in batches, parsed on one worker thread so the event loop keeps serving."""
    items = parse_feed(source, zone)
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-parser") as executor:
        while batch := await loop.run_in_executor(executor, _take_batch, items, batch_slots):
            yield batch


async def persist_feed(
    session: AsyncSession,
    source: IO[bytes],
    zone: tzinfo,
    on_progress: Progress | None = None,
    run: RunReport | None = None,
) -> SyncReport:
    """Store one feed in the caller's transaction; ``FeedError`` if it cannot be used.
    Skipped records are set aside under ``run``, if given."""
    report = SyncReport()
    persister = FeedPersister(session, report, run)
    async for batch in parsed_batches(source, zone):
        await persister.persist(batch)
        if on_progress is not None:
            on_progress(report)
    if report.events_seen == 0 and report.counts.set_aside == 0:
        raise FeedError("the feed lists no events")
    return report


async def run_sync(
    database: Database,
    settings: Settings,
    trigger: str,
    on_progress: Progress | None = None,
    observe: Callable[[RunReport], None] = ignore_run,
    job_id: int | None = None,
) -> EventSyncRunPublic:
    """Fetch, parse and store the feed once, recording the run; returns the finished run.
    ``observe`` is told of the run once opened and once finished, after each commit. A
    failure a later attempt may not meet (a bug, the database gone) raises ``RunFailed``
    once recorded."""
    source = provider.feed_url(settings) or "(JUNCTION_PROVIDER_URL is not set)"
    async with database.transaction() as session:
        opened = await open_run(
            session, INTEGRATION, FEED_KIND, trigger, source=source, job_id=job_id
        )
        observe_after_commit(session, opened, observe)
    run = Run(database, opened, observe)
    log.info("events sync started", run_id=opened.run_id, trigger=trigger, source=source)

    async def fetch_and_store() -> None:
        async with provider.ProviderFeed(settings) as adapter:
            async for feed in adapter.pages(FEED_KIND):
                await store(feed)
        log.info("events sync finished", run_id=opened.run_id, **asdict(opened.counts))

    async def store(feed: bytes) -> None:
        async with run.step() as session:
            zone = ZoneInfo(settings.provider_timezone)
            report = await persist_feed(session, io.BytesIO(feed), zone, on_progress, opened)
            await run.succeed(
                session,
                report.counts,
                notes=report.errors,
                rows_written=report.rows_written,
                bytes_read=len(feed),
            )

    finished = await run.guard(
        fetch_and_store, expected=(FeedError, OutboundError, provider.ProviderError)
    )
    if finished.retryable:
        raise RunFailed(f"events sync run {finished.run_id} failed: {finished.error}")
    async with database.reading() as session:
        return EventSyncRunPublic.model_validate(await runs.get_run(session, finished.run_id))


SYNC_JOB = "events.sync"


async def events_page(
    session: AsyncSession, starts_at: datetime, ends_at: datetime, page: int, per_page: int
) -> EventsPage:
    """Events overlapping the range, each with its current slots in the range and zones."""
    total, events = await repository.events_in_range(
        session, starts_at, ends_at, (page - 1) * per_page, per_page
    )
    slots = await repository.overlapping_slots(
        session, starts_at, ends_at, event_ids=[event.id for event in events]
    )
    by_event: dict[int, list[Slot]] = {}
    for slot in slots:
        by_event.setdefault(slot.event_id, []).append(slot)
    return EventsPage(
        meta=PaginationMeta.of(page, per_page, total),
        data=[
            EventPublic.model_validate({"event": event, "slots": by_event.get(event.id, [])})
            for event in events
        ],
    )


async def search(session: AsyncSession, starts_at: datetime, ends_at: datetime) -> SearchEvents:
    """The challenge's search: current slots in the range of events ever sold online."""
    slots = await repository.overlapping_slots(session, starts_at, ends_at, ever_online=True)
    return SearchEvents(events=[_search_event(slot) for slot in slots])


def _search_event(slot: Slot) -> SearchEvent:
    prices = [zone.price for zone in slot.zones]
    return SearchEvent(
        id=slot.uuid,
        title=slot.event.title,
        start_date=slot.starts_at.date(),
        start_time=slot.starts_at.time(),
        end_date=slot.ends_at.date(),
        end_time=slot.ends_at.time(),
        min_price=float(min(prices)) if prices else None,
        max_price=float(max(prices)) if prices else None,
    )
