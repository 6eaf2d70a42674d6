"""Run every benchmark, one after the other, and rewrite docs/benchmarks.md with the results.

Each benchmark is a script of this folder that prints one JSON line per figure:
``{"name", "value", "unit", "baseline", "ratio", "params"}``. This collects those lines,
then writes a table, the machine it ran on, and a chart of the ratios
(docs/benchmarks.png). The PostgreSQL and Redis benchmarks use the local servers unless
JUNCTION_BENCH_POSTGRES / JUNCTION_BENCH_DATABASE_URL / JUNCTION_BENCH_REDIS_URL say
otherwise.

    uv run --group bench python bench/run_all.py [--only jobs_latency,events_api]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
DOCS = REPOSITORY / "docs"
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/14"

# (script, arguments, extra environment): the order runs the quick ones first.
BENCHMARKS: list[tuple[str, list[str], dict[str, str]]] = [
    ("jobs_latency", [], {}),
    ("jobs_throughput", [], {}),
    ("events_api", [], {}),
    ("proxy_events", [], {}),
    ("events_feed", [], {}),
    ("ratelimit_checks", [], {}),
    (
        "chat_messages",
        ["--seconds", "8", "--workers", "2"],
        {
            "JUNCTION_BENCH_DATABASE_URL": f"{POSTGRES}/junction_bench_chat",
            "JUNCTION_BENCH_REDIS_URL": REDIS,
        },
    ),
    ("realtime_fanout", [], {}),
    ("wellness_sync", [], {}),
    (
        "profiles_create",
        [],
        {
            "JUNCTION_BENCH_DATABASE_URL": f"{POSTGRES}/junction_bench_profiles",
            "JUNCTION_BENCH_REDIS_URL": REDIS,
        },
    ),
    ("airtable_sync", [], {}),
    ("console_pages", [], {}),
]


def fresh_postgres_database(name: str) -> None:
    for statement in (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"):
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", statement],
            check=True,
            capture_output=True,
        )


def run(script: str, arguments: list[str], env: dict[str, str]) -> list[dict[str, Any]]:
    if "JUNCTION_BENCH_DATABASE_URL" in env:
        fresh_postgres_database(env["JUNCTION_BENCH_DATABASE_URL"].rsplit("/", 1)[1])
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "bench" / f"{script}.py"), *arguments],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    results = [
        json.loads(line) for line in completed.stdout.splitlines() if line.startswith('{"name"')
    ]
    took = time.monotonic() - started
    status = "ok" if completed.returncode == 0 else f"exit {completed.returncode}"
    print(f"{script}: {len(results)} figures in {took:.0f} s ({status})", file=sys.stderr)
    if completed.returncode != 0:
        print(completed.stderr[-2000:], file=sys.stderr)
    return [{**result, "script": script} for result in results]


def machine() -> str:
    cpus = os.cpu_count()
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split("\n", 1)[0].split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    return (
        f"{platform.machine()}, {cpus} CPUs{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return "" if value is None else str(value)


def parameters(params: Any) -> str:
    if not isinstance(params, dict):
        return ""
    return ", ".join(f"{key}={value}" for key, value in params.items()).replace("|", "/")


def markdown(results: list[dict[str, Any]], when: datetime) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `uv run --group bench python bench/run_all.py`; every figure comes with the",
        "baseline measured in the same run (see each script's docstring for what it is).",
        "",
        f"Run on {when:%Y-%m-%d %H:%M} UTC; machine: {machine()}.",
        "",
        "![ratio to baseline per figure](benchmarks.png)",
        "",
        "| benchmark | figure | value | unit | baseline | ratio | parameters |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        lines.append(
            f"| {result['script']} | {result['name']} | {shown(result['value'])} "
            f"| {result['unit']} | {shown(result['baseline'])} | {shown(result['ratio'])} "
            f"| {parameters(result.get('params'))} |"
        )
    return "\n".join(lines) + "\n"


def label(result: dict[str, Any]) -> str:
    """The figure's name and what tells apart runs of the same figure."""
    params = result.get("params") if isinstance(result.get("params"), dict) else {}
    shown_keys = ("database", "concurrency", "clients", "requests_per_second")
    suffix = ", ".join(f"{key}={params[key]}" for key in shown_keys if key in params)
    return f"{result['name']} ({suffix})" if suffix else str(result["name"])


def chart(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rated = [r for r in results if isinstance(r.get("ratio"), int | float)]
    figure, axes = plt.subplots(figsize=(10, 0.35 * len(rated) + 1.2))
    axes.barh(range(len(rated)), [r["ratio"] for r in rated])
    axes.set_yticks(range(len(rated)), [label(r) for r in rated], fontsize=8)
    axes.axvline(1.0, color="grey", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlabel("ratio to the baseline of the same run (log scale)")
    axes.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="Comma-separated script names.")
    only = parser.parse_args().only
    chosen = set(only.split(",")) if only else None
    results: list[dict[str, Any]] = []
    for script, arguments, env in BENCHMARKS:
        if chosen is None or script in chosen:
            results.extend(run(script, arguments, env))
    when = datetime.now(UTC)
    (DOCS / "benchmarks.md").write_text(markdown(results, when))
    chart(results, DOCS / "benchmarks.png")
    print(f"wrote docs/benchmarks.md and docs/benchmarks.png ({len(results)} figures)")


if __name__ == "__main__":
    main()
