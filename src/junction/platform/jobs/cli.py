"""``junction worker``, ``junction scheduler`` and ``junction jobs ...``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from prometheus_client import start_http_server
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.db import Database
from junction.platform.errors import JunctionError
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs import repository
from junction.platform.jobs.models import JobState
from junction.platform.jobs.runtime import run_until_signalled
from junction.platform.jobs.worker import parse_queues
from junction.settings import get_settings

jobs_app = typer.Typer(no_args_is_help=True, help="Inspect, retry and discard jobs.")
console = Console()
T = TypeVar("T")


_METRICS_PORT = typer.Option(
    "--metrics-port",
    envvar="JUNCTION_METRICS_PORT",
    min=1,
    max=65535,
    help="Serve this process's Prometheus metrics at http://<host>:<port>/metrics.",
)


def worker(
    queues: Annotated[
        str | None,
        typer.Option(help="Comma-separated, highest priority first; `name:N` sets concurrency."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Jobs run at once per queue.")
    ] = None,
    metrics_port: Annotated[int | None, _METRICS_PORT] = None,
) -> None:
    """Run a job worker until SIGTERM (running jobs finish or are released)."""
    settings = get_settings()
    _serve_metrics(metrics_port, settings.host)
    specs = queues.split(",") if queues else settings.job_queues
    slots = parse_queues(specs, concurrency or settings.job_concurrency)
    asyncio.run(run_until_signalled(settings, worker=True, scheduler=False, queues=slots))


def scheduler(metrics_port: Annotated[int | None, _METRICS_PORT] = None) -> None:
    """Run the scheduler until SIGTERM; any number may run, each tick fires once."""
    settings = get_settings()
    _serve_metrics(metrics_port, settings.host)
    asyncio.run(run_until_signalled(settings, worker=False, scheduler=True))


def _serve_metrics(port: int | None, host: str) -> None:
    """This process's job runs, failures and durations, for Prometheus to scrape."""
    if port is not None:
        start_http_server(port, addr=host)


def _in_transaction(action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        database = Database(get_settings())
        try:
            async with database.transaction() as session:
                return await action(session)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except JunctionError as exc:
        console.print(f"[red]{' '.join(exc.messages)}[/]")
        raise typer.Exit(1) from None


def _when(value: object) -> str:
    return "-" if value is None else str(value)


@jobs_app.command("list")
def list_jobs(
    state: Annotated[JobState | None, typer.Option(help="Only jobs in this state.")] = None,
    queue: Annotated[str | None, typer.Option(help="Only jobs of this queue.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """The newest jobs, with their state, attempts and last error."""
    newest = _in_transaction(
        lambda session: repository.newest_jobs(session, limit, state=state, queue=queue)
    )
    table = Table("id", "name", "queue", "state", "attempts", "run at", "last error")
    for job in newest:
        last = job.errors[-1] if job.errors else None
        error = f"{last['type']}: {last['message']}"[:80] if last else ""
        attempts = f"{job.attempts}/{job.max_attempts}"
        table.add_row(
            str(job.id), job.name, job.queue, job.state, attempts, _when(job.run_at), error
        )
    console.print(table)


@jobs_app.command("retry")
def retry_job(job_id: int) -> None:
    """Queue a dead or discarded job again, with a fresh set of attempts."""
    _in_transaction(lambda session: job_queue.retry(session, job_id))
    console.print(f"Job {job_id} is queued again.")


@jobs_app.command("discard")
def discard_job(job_id: int) -> None:
    """Discard a dead or queued job."""
    _in_transaction(lambda session: job_queue.discard(session, job_id))
    console.print(f"Job {job_id} is discarded.")


@jobs_app.command("schedules")
def schedules() -> None:
    """Every stored schedule, with its last and next run."""
    table = Table("schedule", "job", "when", "last run", "next run", "last job")
    for row in _in_transaction(repository.list_schedules):
        table.add_row(
            row.name,
            row.job_name,
            row.spec,
            _when(row.last_run_at),
            _when(row.next_run_at),
            _when(row.last_job_id),
        )
    console.print(table)
