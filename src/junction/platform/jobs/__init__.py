"""Durable jobs, retries and schedules, stored in the primary database.

Domains use these names from here: ``registry`` (register handlers and schedules),
``enqueue`` (add a job inside the caller's transaction), ``enqueue_unique`` (many jobs
with unique keys in one statement) and ``JobContext`` (what a handler receives). See
docs/jobs.md.
"""

from junction.platform.jobs import maintenance  # noqa: F401  (registers jobs.prune)
from junction.platform.jobs.queue import Enqueued, enqueue, enqueue_unique, job_token
from junction.platform.jobs.registry import Backoff, JobContext, JobRegistry, registry

__all__ = [
    "Backoff",
    "Enqueued",
    "JobContext",
    "JobRegistry",
    "enqueue",
    "enqueue_unique",
    "job_token",
    "registry",
]
