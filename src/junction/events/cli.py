"""``junction sync events``: pull the provider's feed now, in this process, with progress."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from junction.events import provider, service
from junction.events.schemas import EventSyncRunPublic
from junction.platform.db import Database
from junction.platform.integrations import RunStatus
from junction.settings import get_settings

console = Console()


def _describe(report: service.SyncReport) -> str:
    slots = report.counts
    return (
        f"stored {report.events_seen} events: {slots.created} slots created, "
        f"{slots.updated} updated, {slots.unchanged} unchanged, {slots.set_aside} skipped"
    )


async def _run(progress: Progress) -> EventSyncRunPublic:
    settings = get_settings()
    task = progress.add_task(f"fetching {provider.feed_url(settings) or 'the feed'}")

    def on_progress(report: service.SyncReport) -> None:
        progress.update(task, description=_describe(report))

    database = Database(settings)
    try:
        return await service.run_sync(database, settings, "cli", on_progress)
    finally:
        await database.dispose()


def sync_events() -> None:
    """Fetch, parse and store the provider's feed now; exits 1 if the run failed."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        run = asyncio.run(_run(progress))
    table = Table("run", "status", "created", "updated", "unchanged", "skipped", "rows written")
    table.add_row(
        str(run.id),
        run.status,
        *(str(n) for n in (run.created, run.updated, run.unchanged, run.skipped)),
        str(run.rows_written),
    )
    console.print(table)
    for error in run.errors:
        console.print(f"[yellow]{error}[/]")
    if run.status != RunStatus.succeeded.value:
        raise typer.Exit(1)
