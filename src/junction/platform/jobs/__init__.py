"""Durable jobs, retries and schedules, stored in the primary database.

Domains use three names from here: ``registry`` (register handlers and schedules),
``enqueue`` (add a job inside the caller's transaction) and ``JobContext`` (what a
handler receives). See docs/jobs.md.
"""

from junction.platform.jobs import maintenance  # noqa: F401  (registers jobs.prune)
from junction.platform.jobs.queue import Enqueued, enqueue, job_token
from junction.platform.jobs.registry import Backoff, JobContext, JobRegistry, registry

__all__ = [
    "Backoff",
    "Enqueued",
    "JobContext",
    "JobRegistry",
    "enqueue",
    "job_token",
    "registry",
]
