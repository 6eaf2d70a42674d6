"""First-start steps: each runs once per database, whatever the number of processes."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.db import Database
from junction.platform.first_start import FirstStartStep, run_first_start_steps
from junction.settings import Settings


class CountingStep:
    """A step that counts its runs and holds its transaction open a moment, so that
    processes starting together really overlap."""

    def __init__(self, *, fail: bool = False) -> None:
        self.runs = 0
        self.fail = fail

    async def __call__(self, session: AsyncSession) -> str:
        self.runs += 1
        await asyncio.sleep(0.2)
        if self.fail:
            raise RuntimeError("the step failed")
        return f"run {self.runs}"


def always(settings: Settings) -> bool:
    return True


async def test_processes_starting_together_run_a_step_once(settings: Settings) -> None:
    work = CountingStep()
    step = FirstStartStep("tests.step", work, wanted=always)
    databases = [Database(settings) for _ in range(3)]
    try:
        outcomes = await asyncio.gather(
            *(run_first_start_steps(database, settings, [step]) for database in databases)
        )
        again = await run_first_start_steps(databases[0], settings, [step])
    finally:
        await asyncio.gather(*(database.dispose() for database in databases))
    assert work.runs == 1
    assert sorted(outcomes, key=len) == [{}, {}, {"tests.step": "run 1"}]
    assert again == {}


async def test_a_step_not_wanted_is_not_recorded(settings: Settings) -> None:
    work = CountingStep()
    database = Database(settings)
    try:
        unwanted = FirstStartStep("tests.step", work, wanted=lambda s: s.seed_on_start)
        assert await run_first_start_steps(database, settings, [unwanted]) == {}
        wanted_now = settings.model_copy(update={"seed_on_start": True})
        assert await run_first_start_steps(database, wanted_now, [unwanted]) == {
            "tests.step": "run 1"
        }
    finally:
        await database.dispose()
    assert work.runs == 1


async def test_a_failed_step_is_not_recorded_and_runs_at_the_next_start(
    settings: Settings,
) -> None:
    failing = CountingStep(fail=True)
    database = Database(settings)
    try:
        with pytest.raises(RuntimeError):
            await run_first_start_steps(
                database, settings, [FirstStartStep("tests.step", failing, wanted=always)]
            )
        working = CountingStep()
        outcomes = await run_first_start_steps(
            database, settings, [FirstStartStep("tests.step", working, wanted=always)]
        )
    finally:
        await database.dispose()
    assert outcomes == {"tests.step": "run 1"}
