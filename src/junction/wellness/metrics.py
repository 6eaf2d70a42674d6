"""The wellness records per sync status in ``/metrics`` (the run figures, seed 004's health
numbers, are the sync kit's: ``junction.platform.integrations.metrics``).

Refreshed in the background every few seconds from the database; a scrape serves the last
snapshot and never waits on the database.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from junction.platform.db import Database
from junction.platform.metrics import register_snapshot_collector
from junction.wellness import repository
from junction.wellness.models import Appointment, Client, SyncKind


class WellnessRecordsCollector(Collector):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], int] = {}

    def collect(self) -> Iterator[Metric]:
        records = GaugeMetricFamily(
            "junction_wellness_records",
            "Live synced records, by kind and sync_status.",
            labels=["kind", "sync_status"],
        )
        for (kind, status), count in sorted(self.records.items()):
            records.add_metric([kind, status], count)
        yield records

    async def refresh(self, database: Database) -> None:
        records: dict[tuple[str, str], int] = {}
        async with database.reading() as session:
            for kind, model in ((SyncKind.clients, Client), (SyncKind.appointments, Appointment)):
                counts, _ = await repository.status_counts(session, model)
                records.update({(kind.value, s): n for s, n in counts.items()})
        self.records = records


WELLNESS_SYNC_STATS = WellnessRecordsCollector()
register_snapshot_collector(WELLNESS_SYNC_STATS)
