"""Runs on a terminal: a live line per run while it goes, and a table of them once done."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from junction.platform.integrations.runs import RunReport


def describe_counts(report: RunReport) -> str:
    counts = report.counts
    return (
        f"{counts.fetched} fetched, {counts.created} new, {counts.updated} changed, "
        f"{counts.deleted} deleted, {counts.set_aside} set aside"
    )


@contextmanager
def run_progress(console: Console) -> Iterator[Callable[[str], Callable[[RunReport], None]]]:
    """Yields ``watch(label)``: an observer for one run that keeps its line current."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:

        def watch(label: str) -> Callable[[RunReport], None]:
            task = progress.add_task(f"{label}: waiting", counts="")

            def show(report: RunReport) -> None:
                description = f"{report.kind} ({report.mode}): {report.status}"
                progress.update(task, description=description, counts=describe_counts(report))

            return show

        yield watch


def runs_table(reports: Sequence[RunReport], count_names: Mapping[str, str]) -> Table:
    """One row per run: id, kind, mode, status, each count (named as ``count_names`` says),
    and the error."""
    names = [count_names.get(name, name) for name in asdict(reports[0].counts)] if reports else []
    table = Table("run", "kind", "mode", "status", *names, "error")
    for report in reports:
        counts = [str(value) for value in asdict(report.counts).values()]
        table.add_row(
            str(report.run_id), report.kind, report.mode, report.status, *counts, report.error or ""
        )
    return table
