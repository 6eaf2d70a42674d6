"""``junction sync clients|appointments|all [--full]``: a sync now, in this process, with
a live progress display. It takes the same lease as the scheduled runs, so it waits for a
sync of the same kind that is already running rather than running beside it."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from junction.platform.db import Database
from junction.settings import Settings, get_settings
from junction.wellness.models import SyncKind
from junction.wellness.service import RunReport, SyncEngine, SyncRequest

console = Console()
FullOption = Annotated[
    bool, typer.Option("--full", help="Fetch everything, not only changes since the cursor.")
]


def sync_clients(full: FullOption = False) -> None:
    """Sync clients from the wellness API now."""
    _run([SyncKind.clients], full)


def sync_appointments(full: FullOption = False) -> None:
    """Sync appointments from the wellness API now."""
    _run([SyncKind.appointments], full)


def sync_all(full: FullOption = False) -> None:
    """Sync clients, then appointments, now."""
    _run(list(SyncKind), full)


def _run(kinds: list[SyncKind], full: bool) -> None:
    reports = asyncio.run(_sync(get_settings(), kinds, full))
    table = Table(
        "run",
        "kind",
        "mode",
        "status",
        "fetched",
        "created",
        "updated",
        "unchanged",
        "deleted",
        "failed",
        "error",
    )
    for report in reports:
        counts = report.counts
        table.add_row(
            str(report.run_id),
            report.kind,
            report.mode,
            report.status,
            *(
                str(n)
                for n in (
                    counts.fetched,
                    counts.created,
                    counts.updated,
                    counts.unchanged,
                    counts.deleted,
                    counts.set_aside,
                )
            ),
            report.error or "",
        )
    console.print(table)
    if any(report.status != "succeeded" for report in reports):
        raise typer.Exit(1)


async def _sync(settings: Settings, kinds: list[SyncKind], full: bool) -> list[RunReport]:
    database = Database(settings)
    reports = []
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            for kind in kinds:
                task = progress.add_task(f"{kind.value}: waiting", counts="")

                def show(report: RunReport, task_id: TaskID = task) -> None:
                    counts = report.counts
                    progress.update(
                        task_id,
                        description=f"{report.kind} ({report.mode}): {report.status}",
                        counts=f"{counts.fetched} fetched, {counts.created} new, "
                        f"{counts.updated} changed, {counts.deleted} deleted, "
                        f"{counts.set_aside} set aside",
                    )

                engine = SyncEngine(database, settings, observe=show)
                reports.append(await engine.run(SyncRequest(kind, "cli", full=full)))
    finally:
        await database.dispose()
    return reports
