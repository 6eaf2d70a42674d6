"""Job metrics for ``/metrics``: runs, failures and durations per job name (counted by the
worker that ran them), and queue depth per queue and state (queued, running, dead) with
the age of the oldest ready job.

Queue depth comes from a query, but never from a scrape: the platform's ``refresh_forever``
runs it every few seconds with a timeout, and the collector serves the last snapshot, so a
slow database cannot stall ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import structlog
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from junction.platform.db import Database, utcnow
from junction.platform.jobs.models import Job, JobState
from junction.platform.metrics import register_snapshot_collector

log = structlog.get_logger(__name__)

# Not succeeded or discarded jobs: kept for days (``JUNCTION_JOB_RETENTION_DAYS``), they
# are most of the table, which counting them scanned whole on every refresh;
# junction_job_runs_total counts them as they finish.
GAUGED_STATES = (JobState.queued.value, JobState.running.value, JobState.dead.value)

JOB_RUNS = Counter(
    "junction_job_runs_total",
    "Job attempts finished, by job name and outcome (succeeded, failed, dead, interrupted).",
    ["job", "outcome"],
)
JOB_DURATION = Histogram(
    "junction_job_duration_seconds",
    "Time a job attempt ran, by job name.",
    ["job"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
)


def observe_run(job: str, outcome: str, seconds: float) -> None:
    JOB_RUNS.labels(job, outcome).inc()
    JOB_DURATION.labels(job).observe(seconds)


class JobStatsCollector(Collector):
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.oldest_ready: dict[str, datetime] = {}

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "junction_jobs",
            "Jobs queued, running or dead, by queue and state.",
            labels=["queue", "state"],
        )
        for (queue, state), count in sorted(self.counts.items()):
            jobs.add_metric([queue, state], count)
        yield jobs
        age = GaugeMetricFamily(
            "junction_jobs_oldest_ready_age_seconds",
            "How long the oldest job ready to run has waited, by queue.",
            labels=["queue"],
        )
        now = utcnow()
        for queue, run_at in sorted(self.oldest_ready.items()):
            age.add_metric([queue], max((now - run_at).total_seconds(), 0.0))
        yield age

    async def refresh(self, database: Database) -> None:
        async with database.reading() as session:
            counts = await session.execute(
                select(Job.queue, Job.state, func.count())
                .where(Job.state.in_(GAUGED_STATES))
                .group_by(Job.queue, Job.state)
            )
            oldest = await session.execute(
                select(Job.queue, func.min(Job.run_at))
                .where(Job.state == JobState.queued.value, Job.run_at <= utcnow())
                .group_by(Job.queue)
            )
            self.counts = {(q, s): int(n) for q, s, n in counts}
            self.oldest_ready = {q: t for q, t in oldest if t is not None}


JOB_STATS = JobStatsCollector()
register_snapshot_collector(JOB_STATS)
