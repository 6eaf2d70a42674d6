"""Seed 004's health figures for every integration, in ``/metrics``: runs by status,
success rate, errors, seconds since the last success (data freshness) and unresolved dead
letters, each by integration and kind.

They come from the run history in the database (runs happen in worker processes, so a web
process's own counters would miss them), refreshed in the background every few seconds;
a scrape serves the last snapshot and never waits on the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from junction.platform.db import Database, utcnow
from junction.platform.integrations import repository
from junction.platform.integrations.models import RunStatus
from junction.platform.metrics import register_snapshot_collector

LABELS = ["integration", "kind"]


class IntegrationHealthCollector(Collector):
    def __init__(self) -> None:
        self.outcomes: dict[tuple[str, str, str], int] = {}
        self.last_success: dict[tuple[str, str], datetime] = {}
        self.dead_letters: dict[tuple[str, str], int] = {}

    def collect(self) -> Iterator[Metric]:
        runs = GaugeMetricFamily(
            "junction_integration_runs",
            "Sync runs recorded, by integration, kind and status.",
            labels=[*LABELS, "status"],
        )
        rate = GaugeMetricFamily(
            "junction_integration_success_ratio",
            "Finished sync runs that succeeded (0..1).",
            labels=LABELS,
        )
        errors = GaugeMetricFamily(
            "junction_integration_errors", "Sync runs that failed.", labels=LABELS
        )
        for (integration, kind), counts in sorted(self._by_kind().items()):
            for status in RunStatus:
                runs.add_metric([integration, kind, status.value], counts.get(status.value, 0))
            succeeded = counts.get(RunStatus.succeeded.value, 0)
            failed = counts.get(RunStatus.failed.value, 0)
            if succeeded + failed:
                rate.add_metric([integration, kind], succeeded / (succeeded + failed))
            errors.add_metric([integration, kind], failed)
        yield from (runs, rate, errors, self._freshness(), self._dead_letters())

    def _by_kind(self) -> dict[tuple[str, str], dict[str, int]]:
        kinds: dict[tuple[str, str], dict[str, int]] = {}
        for (integration, kind, status), count in self.outcomes.items():
            kinds.setdefault((integration, kind), {})[status] = count
        return kinds

    def _freshness(self) -> Metric:
        since = GaugeMetricFamily(
            "junction_integration_seconds_since_success",
            "Seconds since the last successful sync (absent before the first).",
            labels=LABELS,
        )
        now = utcnow()
        for labels, finished in sorted(self.last_success.items()):
            since.add_metric(list(labels), max((now - finished).total_seconds(), 0.0))
        return since

    def _dead_letters(self) -> Metric:
        letters = GaugeMetricFamily(
            "junction_integration_dead_letters_unresolved",
            "Records set aside and not resolved since.",
            labels=LABELS,
        )
        kinds = {(i, k) for i, k, _ in self.outcomes} | set(self.dead_letters)
        for labels in sorted(kinds):
            letters.add_metric(list(labels), self.dead_letters.get(labels, 0))
        return letters

    async def refresh(self, database: Database) -> None:
        async with database.reading() as session:
            self.outcomes = await repository.run_outcomes(session)
            self.last_success = await repository.last_success_times(session)
            self.dead_letters = await repository.unresolved_dead_letters(session)


INTEGRATION_HEALTH = IntegrationHealthCollector()
register_snapshot_collector(INTEGRATION_HEALTH)
