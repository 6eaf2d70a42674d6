"""``junction seed``, ``reseed``, ``seed-summary``, ``reindex`` and ``counts reconcile``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress
from sqlalchemy.ext.asyncio import AsyncSession

from junction.chat import repository, seed_data, service
from junction.platform.db import Database
from junction.settings import get_settings

counts_app = typer.Typer(no_args_is_help=True, help="Chat and message counts.")
console = Console()
T = TypeVar("T")
REINDEX_BATCH = 2000


def _run(action: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        database = Database(get_settings())
        try:
            return await action(database)
        finally:
            await database.dispose()

    return asyncio.run(run())


def _in_transaction(action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run(database: Database) -> T:
        async with database.transaction() as session:
            return await action(session)

    return _run(run)


def _report(summary: seed_data.SeedSummary) -> None:
    console.print(
        f"Seeded {summary.applications} applications, {summary.chats} chats "
        f"and {summary.messages} messages."
    )


def seed() -> None:
    """Write the sample chat data, only if there is no chat data yet."""
    summary = _in_transaction(seed_data.seed_if_empty)
    if summary is None:
        console.print("The database already has chat data; nothing was seeded.")
    else:
        _report(summary)


def reseed(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every application, chat and message, then write the sample data."""
    if not yes:
        typer.confirm("This deletes every application, chat and message. Continue?", abort=True)

    async def replace(session: AsyncSession) -> seed_data.SeedSummary:
        await repository.delete_everything(session)
        return await seed_data.seed(session)

    _report(_in_transaction(replace))


def seed_summary() -> None:
    """Applications with their tokens and counts, and the totals."""

    async def summarise(session: AsyncSession) -> None:
        for application in await repository.all_applications(session):
            console.print(
                f"{application.name}: token {application.token}, {application.chats_count} chats"
            )
        totals = await repository.count_rows(session)
        console.print(", ".join(f"{count} {name}" for name, count in totals.items()))

    _in_transaction(summarise)


def reindex() -> None:
    """Rebuild the message search index from the message bodies."""

    async def rebuild(database: Database) -> int:
        async with database.reading() as session:
            first, last = await repository.message_id_range(session)
        done = 0
        with Progress(console=console) as progress:
            task = progress.add_task("Reindexing messages", total=max(last - first + 1, 0))
            for start in range(first, last + 1, REINDEX_BATCH):
                end = min(start + REINDEX_BATCH - 1, last)
                async with database.transaction() as session:
                    done += await repository.refold_messages(session, start, end)
                progress.update(task, completed=end - first + 1)
        async with database.transaction() as session:
            await repository.rebuild_search_index(session)
        return done

    console.print(f"Reindexed {_run(rebuild)} messages.")


@counts_app.command("reconcile")
def reconcile() -> None:
    """Recount every application's chats and every chat's messages now."""
    corrected = _in_transaction(service.reconcile_counts)
    console.print(
        f"Corrected {corrected['applications_corrected']} application and "
        f"{corrected['chats_corrected']} chat counts."
    )
