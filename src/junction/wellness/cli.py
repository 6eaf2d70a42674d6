"""``junction sync clients|appointments|all [--full]``: a sync now, in this process, with
a live progress display. It takes the same lease as the scheduled runs, so it waits for a
sync of the same kind that is already running rather than running beside it."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from junction.platform.db import Database
from junction.platform.integrations.display import run_progress, runs_table
from junction.settings import Settings, get_settings
from junction.wellness.models import SyncKind
from junction.wellness.service import COUNT_NAMES, RunReport, SyncEngine, SyncRequest

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
    console.print(runs_table(reports, COUNT_NAMES))
    if any(report.status != "succeeded" for report in reports):
        raise typer.Exit(1)


async def _sync(settings: Settings, kinds: list[SyncKind], full: bool) -> list[RunReport]:
    database = Database(settings)
    reports = []
    try:
        with run_progress(console) as watch:
            for kind in kinds:
                engine = SyncEngine(database, settings, observe=watch(kind.value))
                reports.append(await engine.run(SyncRequest(kind, "cli", full=full)))
    finally:
        await database.dispose()
    return reports
