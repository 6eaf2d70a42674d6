"""Seed 004's health numbers for ``/metrics``: sync success rate, time since the last
successful sync and error count per kind, records per sync status, dead letters.

They come from the run history in the database (runs happen in worker processes, so a
web process's own counters would miss them), refreshed in the background every few
seconds; a scrape serves the last snapshot and never waits on the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from junction.platform.db import Database, utcnow
from junction.platform.metrics import register_snapshot_collector
from junction.wellness import repository
from junction.wellness.models import Appointment, Client, RunStatus, SyncKind

log = structlog.get_logger(__name__)


class WellnessSyncCollector(Collector):
    def __init__(self) -> None:
        self.outcomes: dict[tuple[str, str], int] = {}
        self.last_success: dict[str, datetime] = {}
        self.records: dict[tuple[str, str], int] = {}
        self.dead_letters: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        yield from self._runs()
        since = GaugeMetricFamily(
            "junction_wellness_sync_seconds_since_success",
            "Seconds since the last successful sync, by kind (absent before the first).",
            labels=["kind"],
        )
        now = utcnow()
        for kind, finished in sorted(self.last_success.items()):
            since.add_metric([kind], max((now - finished).total_seconds(), 0.0))
        yield since
        records = GaugeMetricFamily(
            "junction_wellness_records",
            "Live synced records, by kind and sync_status.",
            labels=["kind", "sync_status"],
        )
        for (kind, status), count in sorted(self.records.items()):
            records.add_metric([kind, status], count)
        yield records
        letters = GaugeMetricFamily(
            "junction_wellness_dead_letters_unresolved",
            "Records set aside and not since synced, by kind.",
            labels=["kind"],
        )
        for kind in SyncKind:
            letters.add_metric([kind.value], self.dead_letters.get(kind.value, 0))
        yield letters

    def _runs(self) -> Iterator[Metric]:
        runs = GaugeMetricFamily(
            "junction_wellness_sync_runs",
            "Sync runs recorded, by kind and status.",
            labels=["kind", "status"],
        )
        rate = GaugeMetricFamily(
            "junction_wellness_sync_success_ratio",
            "Finished sync runs that succeeded, by kind (0..1).",
            labels=["kind"],
        )
        errors = GaugeMetricFamily(
            "junction_wellness_sync_errors", "Sync runs that failed, by kind.", labels=["kind"]
        )
        for kind in SyncKind:
            counts = {s: self.outcomes.get((kind.value, s.value), 0) for s in RunStatus}
            for status, count in counts.items():
                runs.add_metric([kind.value, status.value], count)
            finished = counts[RunStatus.succeeded] + counts[RunStatus.failed]
            if finished:
                rate.add_metric([kind.value], counts[RunStatus.succeeded] / finished)
            errors.add_metric([kind.value], counts[RunStatus.failed])
        yield from (runs, rate, errors)

    async def refresh(self, database: Database) -> None:
        async with database.reading() as session:
            self.outcomes = await repository.run_outcomes(session)
            self.last_success = await repository.last_success_times(session)
            records: dict[tuple[str, str], int] = {}
            for kind, model in ((SyncKind.clients, Client), (SyncKind.appointments, Appointment)):
                counts, _ = await repository.status_counts(session, model)
                records.update({(kind.value, s): n for s, n in counts.items()})
            self.records = records
            self.dead_letters = await repository.unresolved_dead_letters(session)


WELLNESS_SYNC_STATS = WellnessSyncCollector()
register_snapshot_collector(WELLNESS_SYNC_STATS)
