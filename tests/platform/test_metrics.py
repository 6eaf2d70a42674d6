"""``/metrics`` of a real ``junction serve``: one process serves its own figures; with
``--workers N`` any process answers for all of them, each figure once.

Which process answered what is read from each process's own file in the directory the
processes share, which the server makes under its TMPDIR (here the test's own folder).
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractContextManager, AsyncExitStack, aclosing
from pathlib import Path
from typing import cast

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from junction.settings import Settings
from tests.support.live import LiveServer, start_live_server

UP = {"method": "GET", "route": "/up", "status": "200"}
SSE = {"transport": "sse"}
# Figures computed on scrape from a database snapshot: served once, never added up.
SNAPSHOT_FAMILIES = {"junction_jobs", "junction_integration_runs"}


@pytest.mark.slow
async def test_one_process_serves_its_own_figures(live_server: LiveServer) -> None:
    await _send_up(live_server.base_url, 5)
    text = await _scrape_until(live_server.base_url, _counted(5))
    assert _samples(text, "junction_http_requests_total", UP) == [5]
    assert _described_twice(text) == []
    assert {"process_resident_memory_bytes", *SNAPSHOT_FAMILIES} <= _families(text)


@pytest.mark.slow
async def test_workers_add_up_their_counters_and_serve_snapshots_once(
    settings: Settings, tmp_path: Path
) -> None:
    with _serving_two_workers(settings, tmp_path) as server:
        directory = _metrics_directory(tmp_path)
        sent = await _send_up_until_every_worker_answered(server.base_url, directory)
        text = await _scrape_until(server.base_url, _counted(sent))
        assert server.stop() == 0
    assert _samples(text, "junction_http_requests_total", UP) == [sent]
    assert _described_twice(text) == []
    assert _families(text) >= SNAPSHOT_FAMILIES
    # It would describe only the process that happened to answer.
    assert "process_resident_memory_bytes" not in _families(text)
    assert not directory.exists()


@pytest.mark.slow
async def test_a_dead_workers_live_gauges_go_and_its_counts_stay(
    settings: Settings, tmp_path: Path
) -> None:
    with _serving_two_workers(settings, tmp_path) as server:
        directory = _metrics_directory(tmp_path)
        sent = await _send_up_until_every_worker_answered(server.base_url, directory)
        async with AsyncExitStack() as streams:
            held = await _open_streams_until_every_worker_holds_some(
                server.base_url, directory, streams
            )
            together = await _scrape(server.base_url)
            killed, survivor = sorted(held)
            os.kill(killed, signal.SIGKILL)
            after = await _scrape_until(
                server.base_url,
                lambda text: (
                    _samples(text, "junction_realtime_connections", SSE) == [held[survivor]]
                    and _counted(sent)(text)
                ),
            )
    assert _samples(together, "junction_realtime_connections", SSE) == [sum(held.values())]
    assert _samples(after, "junction_realtime_connections", SSE) == [held[survivor]]
    assert _samples(after, "junction_http_requests_total", UP) == [sent]


def _serving_two_workers(settings: Settings, tmp_path: Path) -> AbstractContextManager[LiveServer]:
    return start_live_server(
        settings,
        command=("-m", "junction", "serve", "--workers", "2"),
        TMPDIR=str(tmp_path),
        JUNCTION_RUN_EMBEDDED_WORKER="false",
    )


def _metrics_directory(tmp_path: Path) -> Path:
    (directory,) = tmp_path.glob("junction-metrics-*")
    return directory


async def _send_up(base_url: str, count: int) -> None:
    """``count`` requests at once, each on a connection of its own."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10) as client:
        answers = await asyncio.gather(*(client.get("/up") for _ in range(count)))
    assert {answer.status_code for answer in answers} == {200}


async def _send_up_until_every_worker_answered(base_url: str, directory: Path) -> int:
    sent = 0
    while sent < 800:
        await _send_up(base_url, 16)
        sent += 16
        if len(_per_process(directory, "counter", "junction_http_requests_total", UP)) == 2:
            return sent
    raise AssertionError(f"one worker answered all {sent} requests")


async def _open_streams_until_every_worker_holds_some(
    base_url: str, directory: Path, streams: AsyncExitStack
) -> dict[int, float]:
    # Which process accepts a connection is the kernel's choice; on a busy machine one
    # process can take dozens in a row, so keep opening, in bursts, until both hold some.
    for _ in range(40):
        await asyncio.gather(*(_open_stream(base_url, streams) for _ in range(8)))
        held = _per_process(directory, "gauge", "junction_realtime_connections", SSE)
        if len(held) == 2:
            return held
    raise AssertionError("one worker took every stream")


async def _open_stream(base_url: str, streams: AsyncExitStack) -> None:
    """An event stream held open until ``streams`` closes, once the server counts it."""
    client = await streams.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=10))
    response = await streams.enter_async_context(
        client.stream("GET", "/api/v1/stream", params={"channels": "UserUpdatesChannel"})
    )
    assert response.status_code == 200
    # Closed with the stack: collected half read, the iterator would close the stream now.
    lines = await streams.enter_async_context(
        aclosing(cast(AsyncGenerator[str, None], response.aiter_lines()))
    )
    async for line in lines:
        if line == ": subscribed":
            return
    raise AssertionError("the stream ended before it was subscribed")


def _per_process(directory: Path, kind: str, name: str, labels: dict[str, str]) -> dict[int, float]:
    """A figure as each process's own file holds it, by process id, where above 0."""
    figures = {}
    for path in directory.glob(f"{kind}_*.db"):
        metrics = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        value = sum(
            sample.value
            for metric in metrics
            for sample in metric.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )
        if value > 0:
            figures[int(path.stem.rsplit("_", 1)[1])] = value
    return figures


async def _scrape(base_url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{base_url}/metrics")
    assert response.status_code == 200
    return response.text


def _counted(requests: int) -> Callable[[str], bool]:
    """Whether a scrape counts ``requests`` to /up: a process counts a request once it has
    answered it, so the last may still be uncounted when its answer arrives."""
    return lambda text: _samples(text, "junction_http_requests_total", UP) == [requests]


async def _scrape_until(base_url: str, done: Callable[[str], bool], timeout: float = 20) -> str:
    """Scrapes until ``done`` holds or time runs out; the last scrape either way."""
    deadline = time.monotonic() + timeout
    text = await _scrape(base_url)
    while not done(text) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        text = await _scrape(base_url)
    return text


def _samples(text: str, name: str, labels: dict[str, str]) -> list[float]:
    """Every sample of that name whose labels include ``labels``."""
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


def _families(text: str) -> set[str]:
    return set(_described(text))


def _described_twice(text: str) -> list[str]:
    return [name for name, count in collections.Counter(_described(text)).items() if count > 1]


def _described(text: str) -> list[str]:
    return [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
