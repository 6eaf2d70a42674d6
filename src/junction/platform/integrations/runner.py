"""One run's life, the same for every integration.

A run is opened (with the kind's lease, when only one run of it may go at a time), lands
its work in steps of one transaction each, and closes as succeeded or failed. After every
commit its observer (the CLI's progress, the live channel) is told of the report as it then
stands. A failure is recorded in the run, never lost: the ones the integration expects
(upstream errors, a refused feed) with the words it gives them, anything else with its type
and marked retryable, and a cancelled run (shutdown, a job's timeout) before the
cancellation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.db import Database
from junction.platform.integrations.lease import (
    LeaseHeld,
    acquire_lease,
    extend_lease,
    release_lease,
)
from junction.platform.integrations.models import RunStatus
from junction.platform.integrations.runs import (
    RunCounts,
    RunReport,
    add_counts,
    finish_run,
    observe_after_commit,
    record_interrupted,
)

log = structlog.get_logger(__name__)

Report = TypeVar("Report", bound=RunReport)
T = TypeVar("T")

LEASE_POLL_SECONDS = 0.5
CANCELLED = "the run was cancelled (shutdown or timeout)"


class RunBusy(Exception):
    """Another run of the same kind holds the lease and did not finish in time."""


class LeaseLost(Exception):
    """This run's lease expired and another run took over: it must not write on."""


class RunFailed(Exception):
    """A run failed in a way worth another attempt; a job raises it so that the job
    system retries. The run's error is in the run history too."""


def lease_name(integration: str, kind: str) -> str:
    return f"{integration}:{kind}"


def ignore_run(report: RunReport) -> None:
    """An observer that looks away."""


@dataclass
class Run(Generic[Report]):
    """A run in progress: its report, its observer, and its lease if it holds one."""

    database: Database
    report: Report
    observe: Callable[[Report], None] = ignore_run
    lease: timedelta | None = None

    @property
    def lease_name(self) -> str:
        return lease_name(self.report.integration, self.report.kind)

    @property
    def holder(self) -> str:
        return str(self.report.run_id)

    async def take_lease(self, session: AsyncSession) -> None:
        """In the transaction that opened the run; ``LeaseHeld`` while a live run holds
        it. A run whose holder died is recorded as interrupted."""
        assert self.lease is not None
        previous = await acquire_lease(session, self.lease_name, self.holder, self.lease)
        if previous is not None:
            await record_interrupted(session, int(previous))

    @asynccontextmanager
    async def step(self) -> AsyncIterator[AsyncSession]:
        """A transaction of the run; the lease is extended in it, and the observer told
        once it has committed."""
        async with self.database.transaction() as session:
            if self.lease is not None and not await extend_lease(
                session, self.lease_name, self.holder, self.lease
            ):
                raise LeaseLost("another run took over this kind after the lease expired")
            yield session
            observe_after_commit(session, self.report, self.observe)

    async def succeed(
        self, session: AsyncSession, counts: RunCounts | None = None, **values: Any
    ) -> None:
        """Close the run in ``session`` (a step), with its last counts and ``values``."""
        if self.lease is not None and not await release_lease(
            session, self.lease_name, self.holder
        ):
            raise LeaseLost("another run took over this kind after the lease expired")
        if counts is not None:
            await add_counts(session, self.report, counts)
        await finish_run(
            session, self.report, RunStatus.succeeded, error=self.report.error, **values
        )

    async def fail(
        self,
        error: str,
        *,
        retryable: bool = False,
        notes: list[str] | None = None,
        **values: Any,
    ) -> None:
        """Close the run as failed (with ``values``), in a transaction of its own,
        releasing its lease."""
        self.report.retryable = retryable
        async with self.database.transaction() as session:
            if self.lease is not None:
                await release_lease(session, self.lease_name, self.holder)
            await finish_run(
                session, self.report, RunStatus.failed, error=error, notes=notes or [], **values
            )
            observe_after_commit(session, self.report, self.observe)
        log.warning(
            "sync failed",
            integration=self.report.integration,
            kind=self.report.kind,
            run_id=self.report.run_id,
            error=error,
        )

    async def guard(
        self,
        work: Callable[[], Awaitable[None]],
        *,
        expected: tuple[type[Exception], ...],
        describe: Callable[[Exception], str] = str,
        is_transient: Callable[[Exception], bool] = lambda exc: False,
    ) -> Report:
        """Do ``work``; a failure closes the run as failed (see the module's docstring)."""
        try:
            await work()
        except asyncio.CancelledError:
            await asyncio.shield(self.fail(CANCELLED, retryable=True, notes=[CANCELLED]))
            raise
        except LeaseLost as exc:
            await self.fail(str(exc))
        except expected as exc:
            message = describe(exc)
            await self.fail(message, retryable=is_transient(exc), notes=[message])
        except Exception as exc:
            log.exception("sync failed unexpectedly", run_id=self.report.run_id)
            message = f"{type(exc).__name__}: {exc}"
            await self.fail(message, retryable=True, notes=[message])
        return self.report


async def read_ahead(pages: AsyncIterator[T]) -> AsyncGenerator[T]:
    """``pages``, with the next one fetched while the caller lands the current one: a sync
    then takes about as long as the slower of the two, not their sum. At most two pages are
    held at a time."""
    upcoming = asyncio.ensure_future(anext(pages))
    try:
        while True:
            try:
                page = await upcoming
            except StopAsyncIteration:
                return
            upcoming = asyncio.ensure_future(anext(pages))
            yield page
    finally:
        # Left early (the caller failed or stopped): the page read ahead is not wanted, and
        # how its read ended must not hide why the caller stopped.
        upcoming.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await upcoming


async def wait_for_lease(
    try_start: Callable[[], Awaitable[T | None]], wait_seconds: float | None, busy: str
) -> T:
    """Call ``try_start`` (None while the lease is held) until it starts a run, for at most
    ``wait_seconds`` (None: as long as it takes); then ``RunBusy(busy)``."""
    loop = asyncio.get_running_loop()
    deadline = None if wait_seconds is None else loop.time() + wait_seconds
    while True:
        try:
            started = await try_start()
        except LeaseHeld:
            started = None
        if started is not None:
            return started
        if deadline is not None and loop.time() >= deadline:
            raise RunBusy(busy)
        await asyncio.sleep(LEASE_POLL_SECONDS)
