"""The sync kit: what every integration (the provider feed, the wellness API, Airtable)
shares, so that each domain keeps only its adapter, its mapping and its rules.

- ``models``: one run record for every integration (``integration_runs``), one table of
  records set aside (``integration_dead_letters``), one lease table (``integration_leases``);
- ``runs``: open, count, finish and fail a run; set records aside and resolve them; the
  report every watcher sees (CLI, live channel, job result);
- ``runner``: a run's life, the same for every integration: opened (with its lease), landed
  in steps of one transaction each, closed as succeeded or failed, observed after commits;
- ``lease``: one run of a kind at a time, taken over once its holder's lease expires;
- ``channel``: ``SyncStatusChannel``, where every run's progress goes after each commit;
- ``adapters``: what a domain's adapter module implements (``PullAdapter``, ``PushAdapter``);
- ``records``: reading outside records (ids, bounded text, times); ``RecordRejected``;
- ``transport``: an upstream's body capped at a size while it is read;
- ``throttle``: requests to an upstream spaced to its budget, shared by every process;
- ``data_version``: an integration's data version, for cache keys that change with a sync;
- ``metrics``: seed 004's health figures per integration in ``/metrics``;
- ``catalog``: what each integration offers its operators (start a sync, replay a record).
"""

from junction.platform.integrations.catalog import (
    REPLAY_JOB,
    IntegrationEntry,
    SyncTrigger,
    catalog,
)
from junction.platform.integrations.channel import (
    SYNC_STATUS_STREAM,
    SyncStatusChannel,
    SyncStatusPublisher,
)
from junction.platform.integrations.data_version import DataVersionWatcher
from junction.platform.integrations.lease import (
    LeaseHeld,
    acquire_lease,
    extend_lease,
    release_lease,
)
from junction.platform.integrations.models import DeadLetter, IntegrationRun, Lease, RunStatus
from junction.platform.integrations.runner import (
    LeaseLost,
    Run,
    RunBusy,
    RunFailed,
    ignore_run,
    lease_name,
    read_ahead,
    wait_for_lease,
)
from junction.platform.integrations.runs import (
    RunCounts,
    RunReport,
    SetAside,
    add_counts,
    finish_run,
    observe_after_commit,
    open_run,
    resolve_dead_letters,
    set_aside,
)
from junction.platform.integrations.schemas import DeadLetterPublic
from junction.platform.integrations.throttle import UpstreamThrottle

__all__ = [
    "REPLAY_JOB",
    "SYNC_STATUS_STREAM",
    "DataVersionWatcher",
    "DeadLetter",
    "DeadLetterPublic",
    "IntegrationEntry",
    "IntegrationRun",
    "Lease",
    "LeaseHeld",
    "LeaseLost",
    "Run",
    "RunBusy",
    "RunCounts",
    "RunFailed",
    "RunReport",
    "RunStatus",
    "SetAside",
    "SyncStatusChannel",
    "SyncStatusPublisher",
    "SyncTrigger",
    "UpstreamThrottle",
    "acquire_lease",
    "add_counts",
    "catalog",
    "extend_lease",
    "finish_run",
    "ignore_run",
    "lease_name",
    "observe_after_commit",
    "open_run",
    "read_ahead",
    "release_lease",
    "resolve_dead_letters",
    "set_aside",
    "wait_for_lease",
]
