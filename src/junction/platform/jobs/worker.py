"""The worker: claims jobs, runs their handlers, heartbeats, and shuts down gracefully.

One loop does all writes of the worker's jobs in one transaction per turn: the outcomes
of finished jobs, then new claims for the free slots of each queue, in priority order.
Jobs run as asyncio tasks; a separate heartbeat task extends their leases, cancels any
job whose lease was taken over (so one job never runs twice at once) and reaps jobs of
dead workers. The loop sleeps until woken by an enqueue in this process, a NOTIFY from
PostgreSQL, a finished job, or, as the fallback, the poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import structlog
from redis.asyncio import Redis

from junction.platform.cache import Cache
from junction.platform.db import Database, utcnow
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs.metrics import observe_run
from junction.platform.jobs.registry import Backoff, JobContext, JobRegistry, registry
from junction.platform.realtime.broker import Broker
from junction.settings import Settings

log = structlog.get_logger(__name__)

RESULT_SUMMARY_LIMIT = 4000


@dataclass
class QueueSlots:
    name: str
    concurrency: int
    running: int = 0

    @property
    def free(self) -> int:
        return self.concurrency - self.running


def parse_queues(specs: Sequence[str], default_concurrency: int) -> list[QueueSlots]:
    """``["sync:10", "default"]`` -> queues in priority order with their concurrency."""
    slots = []
    for spec in specs:
        name, _, concurrency = spec.partition(":")
        slots.append(
            QueueSlots(name.strip(), int(concurrency) if concurrency else default_concurrency)
        )
    if not slots or any(s.concurrency < 1 or not s.name for s in slots):
        raise ValueError(f"invalid queue list: {','.join(specs)!r}")
    return slots


@dataclass
class _Running:
    job: job_queue.ClaimedJob
    slots: QueueSlots
    task: asyncio.Task[None]
    abandoned: bool = False


class Worker:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        queues: list[QueueSlots] | None = None,
        jobs_registry: JobRegistry = registry,
        broker: Broker | None = None,
        cache: Cache | None = None,
        redis: Redis | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.broker = broker
        self.cache = cache
        self.redis = redis
        self.registry = jobs_registry
        self.queues = queues or parse_queues(settings.job_queues, settings.job_concurrency)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._running: dict[int, _Running] = {}
        self._successes: list[tuple[int, Any]] = []
        self._failures: list[tuple[job_queue.ClaimedJob, dict[str, Any], float | None]] = []

    def stop(self) -> None:
        """Stop claiming; ``run`` returns once running jobs finished or were released."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        job_queue.add_local_wakeup(self._wake)
        listener = asyncio.create_task(self._listen()) if not self.database.is_sqlite else None
        heart = asyncio.create_task(self._heartbeat_loop())
        log.info(
            "worker started", worker=self.id, queues=[(q.name, q.concurrency) for q in self.queues]
        )
        try:
            await self._claim_loop()
            await self._drain()
        finally:
            job_queue.remove_local_wakeup(self._wake)
            for task in (listener, heart):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            log.info("worker stopped", worker=self.id)

    async def _claim_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = await self._exchange(claiming=True)
            except Exception:
                log.exception("job claim failed; retrying after the poll interval")
                claimed = []
                await asyncio.sleep(self.settings.job_poll_seconds)
            for job, slots in claimed:
                self._start(job, slots)
            if not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.job_poll_seconds)

    async def _exchange(self, *, claiming: bool) -> list[tuple[job_queue.ClaimedJob, QueueSlots]]:
        """One write transaction: record finished jobs, then claim for the free slots."""
        successes, self._successes = self._successes, []
        failures, self._failures = self._failures, []
        wanted = [q for q in self.queues if q.free > 0] if claiming else []
        if not (successes or failures or wanted):
            return []
        claimed: list[tuple[job_queue.ClaimedJob, QueueSlots]] = []
        try:
            async with self.database.transaction() as session:
                if successes:
                    await job_queue.complete(session, self.id, successes)
                for job, error, delay in failures:
                    retry_at = None if delay is None else utcnow() + timedelta(seconds=delay)
                    await job_queue.fail(session, self.id, job, error, retry_at)
                for slots in wanted:
                    lease = self.settings.job_lease_seconds
                    batch = await job_queue.claim(session, self.id, slots.name, slots.free, lease)
                    claimed.extend((job, slots) for job in batch)
        except BaseException:
            # Outcomes are guarded by lease ownership, so writing them again is safe.
            self._successes[:0] = successes
            self._failures[:0] = failures
            raise
        return claimed

    def _start(self, job: job_queue.ClaimedJob, slots: QueueSlots) -> None:
        slots.running += 1
        task = asyncio.create_task(self._run_job(job), name=f"job-{job.id}")
        self._running[job.id] = _Running(job, slots, task)
        task.add_done_callback(lambda _: self._finished(job.id))

    def _finished(self, job_id: int) -> None:
        running = self._running.pop(job_id)
        running.slots.running -= 1
        self._wake.set()

    async def _run_job(self, job: job_queue.ClaimedJob) -> None:
        started = time.perf_counter()
        outcome = "succeeded"
        try:
            result = await self._call_handler(job)
        except asyncio.CancelledError:
            outcome = "interrupted"
            raise
        except Exception as exc:
            outcome = self._record_failure(job, exc)
        else:
            self._successes.append((job.id, summarize(result)))
        finally:
            observe_run(job.name, outcome, time.perf_counter() - started)

    async def _call_handler(self, job: job_queue.ClaimedJob) -> Any:
        definition = self.registry.get(job.name)
        context = JobContext(
            job.id,
            job.name,
            job.payload,
            job.attempts,
            job.max_attempts,
            self.database,
            self.settings,
            self.broker,
            self.cache,
            self.redis,
        )
        # asyncio.timeout, unlike wait_for on 3.11, runs the handler without a second task.
        async with asyncio.timeout(job.timeout_seconds):
            return await definition.handler(context)

    def _record_failure(self, job: job_queue.ClaimedJob, exc: Exception) -> str:
        error = job_queue.describe_error(exc)
        if job.attempts >= job.max_attempts:
            delay = None
        else:
            definition = self.registry.jobs.get(job.name)
            backoff = definition.backoff if definition else Backoff()
            # Its workers are woken when the retry falls due (``queue.fail``).
            delay = backoff.delay(job.attempts)
        self._failures.append((job, error, delay))
        log.warning(
            "job failed",
            job_id=job.id,
            job=job.name,
            attempt=job.attempts,
            error=f"{error['type']}: {error['message']}",
            retry_in_seconds=None if delay is None else round(delay, 2),
        )
        return "failed" if delay is not None else "dead"

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.job_heartbeat_seconds)
            try:
                await self._heartbeat()
                async with self.database.transaction() as session:
                    await job_queue.reap(session)
            except Exception:
                log.exception("job heartbeat failed")

    async def _heartbeat(self) -> None:
        ids = [job_id for job_id, r in self._running.items() if not r.abandoned]
        if not ids:
            return
        async with self.database.transaction() as session:
            owned = await job_queue.heartbeat(
                session, self.id, ids, self.settings.job_lease_seconds
            )
        for job_id in set(ids) - owned:
            running = self._running.get(job_id)
            if running is not None and not running.task.done():
                # Another worker owns it now: stop, so that it never runs twice at once.
                log.warning("job lease lost; cancelling", job_id=job_id, job=running.job.name)
                running.abandoned = True
                running.task.cancel()

    async def _drain(self) -> None:
        """After stop: let running jobs finish within the grace period, release the rest."""
        tasks = [r.task for r in self._running.values()]
        if tasks:
            log.info("waiting for running jobs", count=len(tasks))
            await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_seconds)
        leftover = list(self._running.values())
        for running in leftover:
            running.abandoned = True
            running.task.cancel()
        await asyncio.gather(*(r.task for r in leftover), return_exceptions=True)
        await self._exchange(claiming=False)
        if leftover:
            async with self.database.transaction() as session:
                await job_queue.release(session, self.id, [r.job.id for r in leftover])
            log.info("released unfinished jobs", count=len(leftover))

    async def _listen(self) -> None:
        """LISTEN on a dedicated connection; reconnect with a pause when it drops."""
        while True:
            try:
                await self._listen_until_disconnected()
            except Exception as exc:
                log.warning("LISTEN connection failed; polling meanwhile", error=str(exc))
            await asyncio.sleep(self.settings.job_poll_seconds)

    async def _listen_until_disconnected(self) -> None:
        dsn = self.settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        names = {q.name for q in self.queues}
        closed = asyncio.Event()

        def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            if payload in names:
                self._wake.set()

        connection = await asyncpg.connect(dsn)
        try:
            connection.add_termination_listener(lambda _: closed.set())
            await connection.add_listener(job_queue.NOTIFY_CHANNEL, notified)
            # Jobs enqueued while nobody listened: look once.
            self._wake.set()
            await closed.wait()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(connection.close(timeout=2))


def summarize(result: Any) -> Any:
    """A handler's return value as stored: JSON, short; anything else as a short string."""
    if result is None:
        return None
    try:
        encoded = json.dumps(result)
    except (TypeError, ValueError):
        return repr(result)[:RESULT_SUMMARY_LIMIT]
    if len(encoded) > RESULT_SUMMARY_LIMIT:
        return encoded[:RESULT_SUMMARY_LIMIT]
    return result
