"""The ``junction`` command line. Every command reads the same settings as ``serve``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from contextlib import AbstractContextManager, nullcontext
from types import FrameType
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from junction.app import FIRST_START_STEPS, JOB_MODULES
from junction.chat import cli as chat_cli
from junction.events import cli as events_cli
from junction.platform.auth import Scope, create_api_key
from junction.platform.db import Database
from junction.platform.first_start import run_first_start_steps
from junction.platform.http_protocol import NoDelayHttpToolsProtocol
from junction.platform.jobs import cli as jobs_cli
from junction.platform.jobs.registry import load_job_modules
from junction.platform.logging import configure_logging
from junction.platform.metrics import shared_across_processes
from junction.platform.migrations import SchemaNotReady, prepare_schema, upgrade_to_head
from junction.platform.realtime import UVICORN_WEBSOCKET_OPTIONS
from junction.settings import Settings, get_settings, settings_reference
from junction.wellness import cli as wellness_cli

app = typer.Typer(no_args_is_help=True, help="Junction: one service, five systems.")
keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys.")
app.add_typer(keys_app, name="keys")
app.add_typer(jobs_cli.jobs_app, name="jobs")
app.command()(jobs_cli.worker)
app.command()(jobs_cli.scheduler)
app.command()(chat_cli.seed)
app.command()(chat_cli.reseed)
app.command()(chat_cli.seed_summary)
app.command()(chat_cli.reindex)
app.add_typer(chat_cli.counts_app, name="counts")
sync_app = typer.Typer(no_args_is_help=True, help="Pull an integration's data now.")
app.add_typer(sync_app, name="sync")
sync_app.command("events")(events_cli.sync_events)
sync_app.command("clients")(wellness_cli.sync_clients)
sync_app.command("appointments")(wellness_cli.sync_appointments)
sync_app.command("all")(wellness_cli.sync_all)
# A standalone worker or scheduler runs the domains' jobs without importing the app.
load_job_modules(JOB_MODULES)
console = Console()
# Commands that read or write the data: they migrate first, as `serve` does.
DATA_COMMANDS = frozenset(
    {"seed", "reseed", "seed-summary", "reindex", "counts", "sync", "jobs", "keys"}
)


@app.callback()
def _prepare_data_commands(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand not in DATA_COMMANDS or "--help" in sys.argv:
        return
    settings = get_settings()

    async def prepare() -> None:
        database = Database(settings)
        try:
            await prepare_schema(settings, database)
        finally:
            await database.dispose()

    try:
        asyncio.run(prepare())
    except SchemaNotReady as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    except (OSError, DBAPIError) as exc:
        where = settings.masked()["database_url"]
        typer.secho(f"Cannot reach the database at {where}: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Web processes.")] = 1,
    demo: Annotated[
        bool, typer.Option(help="Also serve the emulators and point the integrations at them.")
    ] = False,
) -> None:
    """Run the HTTP API (migrations are applied on start)."""
    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    if demo:
        # The app factory (here or in a worker process) reads these to find the emulators.
        os.environ.update(JUNCTION_DEMO="true", JUNCTION_HOST=host, JUNCTION_PORT=str(port))
        get_settings.cache_clear()
    if workers > 1:
        # Migrate once here rather than in every worker at the same moment.
        asyncio.run(Database(settings).wait_until_reachable(settings.database_startup_attempts))
        migrate_and_prepare(get_settings())
        os.environ["JUNCTION_MIGRATE_ON_START"] = "false"
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    console.print(
        f"[bold]Junction[/] on http://{shown_host}:{port}  "
        f"API docs: http://{shown_host}:{port}/docs  database: {settings.masked()['database_url']}"
    )
    run_server("junction.app:create_app", host=host, port=port, workers=workers)


def run_server(app_factory: str, *, host: str, port: int, workers: int = 1) -> None:
    """uvicorn with Junction's logging; SIGTERM lets in-flight requests finish first."""
    # uvicorn re-raises the signal it caught once it has shut down; a shutdown that
    # finished cleanly should exit 0, as process supervisors expect.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    settings = get_settings()
    # Whichever of several web processes answers a scrape of /metrics adds up all of theirs.
    metrics: AbstractContextManager[object] = (
        shared_across_processes() if workers > 1 else nullcontext()
    )
    with metrics:
        uvicorn.run(
            app_factory,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            proxy_headers=True,
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
            loop=settings.event_loop,
            http=NoDelayHttpToolsProtocol,
            **UVICORN_WEBSOCKET_OPTIONS,
        )


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


@app.command()
def migrate() -> None:
    """Apply every pending database migration, then load the sample data if the settings
    ask for it (JUNCTION_SEED_ON_START) and it was never loaded."""
    migrate_and_prepare(get_settings())


def migrate_and_prepare(settings: Settings) -> None:
    """The migrations, then the first-start steps that never ran on this database."""
    upgrade_to_head(settings)
    console.print(f"Database at {settings.masked()['database_url']} is up to date.")

    async def first_start() -> dict[str, str]:
        database = Database(settings)
        try:
            return await run_first_start_steps(database, settings, FIRST_START_STEPS)
        finally:
            await database.dispose()

    for step, outcome in asyncio.run(first_start()).items():
        console.print(f"{step}: {outcome}.")


@app.command()
def emulators(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8100,
) -> None:
    """Serve the Airtable, provider and wellness emulators at /emulators/<name>, for a
    demo whose workers run in processes of their own."""
    configure_logging(get_settings())
    console.print(
        f"[bold]Emulators[/] on http://{host}:{port}/emulators/airtable, /emulators/provider "
        "and /emulators/wellness"
    )
    run_server("junction.emulators.served:create_emulators_app", host=host, port=port)


@app.command()
def config(
    reference: Annotated[
        bool, typer.Option(help="Print every setting with its default and meaning (Markdown).")
    ] = False,
) -> None:
    """Print the effective settings, secrets masked."""
    if reference:
        print(settings_reference(), end="")
        return
    table = Table("setting", "value", "environment variable")
    for name, value in get_settings().masked().items():
        table.add_row(name, str(value), f"JUNCTION_{name.upper()}")
    console.print(table)


@keys_app.command("create")
def keys_create(
    scope: Annotated[list[Scope], typer.Option("--scope", "-s", help="Repeat for several scopes.")],
    name: Annotated[str, typer.Option(help="Who or what the key is for.")] = "unnamed",
) -> None:
    """Create an API key; it is printed once and cannot be shown again."""

    async def create() -> str:
        database = Database(get_settings())
        try:
            async with database.transaction() as session:
                _, plain = await create_api_key(session, name, scope)
        finally:
            await database.dispose()
        return plain

    plain = asyncio.run(create())
    console.print(
        f"Scopes: {', '.join(sorted(s.value for s in scope))}. Keep this key; it is shown once:"
    )
    print(plain)
