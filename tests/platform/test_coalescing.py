"""Calls made while one is in flight go together in the next; nothing waits on a timer."""

from __future__ import annotations

import asyncio

import pytest

from junction.platform.coalescing import Coalescer


class Recorder:
    """A ``send`` that doubles numbers, refuses negative ones and records its batches."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()

    async def send(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(items)
        await self.release.wait()
        if 13 in items:
            raise RuntimeError("send failed")
        return [ValueError(f"{n} < 0") if n < 0 else 2 * n for n in items]


async def test_calls_in_flight_go_together_in_arrival_order() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.send, max_batch=3)
    calls = [asyncio.create_task(coalescer.submit(n)) for n in range(1, 8)]
    await asyncio.sleep(0)  # every call is queued before the first batch is sent
    recorder.release.set()
    assert await asyncio.gather(*calls) == [2, 4, 6, 8, 10, 12, 14]
    assert recorder.batches == [[1, 2, 3], [4, 5, 6], [7]]


async def test_a_lone_call_goes_at_once() -> None:
    recorder = Recorder()
    recorder.release.set()
    coalescer = Coalescer(recorder.send, max_batch=10)
    assert await coalescer.submit(4) == 8
    assert await coalescer.submit(5) == 10
    assert recorder.batches == [[4], [5]]


async def test_each_item_gets_its_own_error_and_a_failed_send_fails_only_its_batch() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.send, max_batch=2)
    calls = [asyncio.create_task(coalescer.submit(n)) for n in (1, -1, 13, 2, 3)]
    await asyncio.sleep(0)
    recorder.release.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert outcomes[0] == 2
    assert isinstance(outcomes[1], ValueError)
    assert all(isinstance(o, RuntimeError) for o in outcomes[2:4])  # the batch [13, 2]
    assert outcomes[4] == 6


async def test_a_caller_that_goes_away_leaves_its_item_in_the_batch() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.send, max_batch=10)
    leaving = asyncio.create_task(coalescer.submit(1))
    staying = asyncio.create_task(coalescer.submit(2))
    await asyncio.sleep(0)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    recorder.release.set()
    assert await staying == 4
    assert recorder.batches == [[1, 2]]
