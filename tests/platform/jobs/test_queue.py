"""Enqueue, unique keys, claims and lease ownership, on the real database."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.engine.interfaces import CacheStats

from junction.platform.db import Database, run_after_commit, utcnow
from junction.platform.jobs import Backoff, enqueue
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs.models import Job, JobState
from junction.platform.jobs.registry import UnknownJob
from junction.settings import Settings
from tests.support.queue import job, jobs_by_id


class Rollback(Exception):
    pass


async def _count(database: Database) -> int:
    async with database.reading() as session:
        return int(await session.scalar(select(func.count()).select_from(Job)) or 0)


async def test_a_rolled_back_transaction_leaves_no_job(database: Database) -> None:
    async def enqueue_then_fail() -> None:
        async with database.transaction() as session:
            await enqueue(session, "tests.noop", {"n": 1})
            raise Rollback

    with pytest.raises(Rollback):
        await enqueue_then_fail()
    assert await _count(database) == 0


async def test_a_committed_enqueue_stores_the_job_with_its_handler_defaults(
    database: Database,
) -> None:
    async with database.transaction() as session:
        enqueued = await enqueue(session, "tests.fail", {"n": 1}, delay_seconds=60)
    stored = await job(database, enqueued.id)
    assert enqueued.created
    assert (stored.name, stored.state, stored.payload) == ("tests.fail", "queued", {"n": 1})
    assert (stored.queue, stored.max_attempts, stored.attempts) == ("default", 3, 0)
    assert stored.run_at > stored.created_at + timedelta(seconds=59)


async def test_enqueue_refuses_a_job_without_a_handler(database: Database) -> None:
    with pytest.raises(UnknownJob):
        async with database.transaction() as session:
            await enqueue(session, "tests.no_such_job")


async def test_after_commit_callbacks_run_on_commit_only(database: Database) -> None:
    calls: list[str] = []
    async with database.transaction() as session:
        run_after_commit(session, lambda: calls.append("committed"))
        assert calls == []

    async def register_then_fail() -> None:
        async with database.transaction() as session:
            run_after_commit(session, lambda: calls.append("rolled back"))
            raise Rollback

    with pytest.raises(Rollback):
        await register_then_fail()
    async with database.transaction() as session:
        pass
    assert calls == ["committed"]


async def test_a_unique_key_merges_duplicates_until_the_job_finishes(
    database: Database,
) -> None:
    async with database.transaction() as session:
        first = await enqueue(session, "tests.noop", unique_key="k")
    async with database.transaction() as session:
        second = await enqueue(session, "tests.noop", unique_key="k")
    assert first.created
    assert not second.created
    assert second.id == first.id

    async with database.transaction() as session:
        [claimed] = await job_queue.claim(session, "w", "default", 10, 30)
    async with database.transaction() as session:
        running_duplicate = await enqueue(session, "tests.noop", unique_key="k")
    assert running_duplicate.id == first.id

    async with database.transaction() as session:
        await job_queue.complete(session, "w", [(claimed.id, None)])
    async with database.transaction() as session:
        after = await enqueue(session, "tests.noop", unique_key="k")
    assert after.created
    assert after.id != first.id


async def test_concurrent_enqueues_with_one_unique_key_make_one_job(
    job_settings: Settings,
) -> None:
    # Each enqueuer has its own engine: separate connections racing for the key.
    databases = [Database(job_settings) for _ in range(8)]

    async def enqueue_in(database: Database) -> int:
        async with database.transaction() as session:
            return (await enqueue(session, "tests.noop", unique_key="shared")).id

    try:
        ids = await asyncio.gather(*(enqueue_in(d) for d in databases for _ in range(3)))
        assert len(set(ids)) == 1
        assert await _count(databases[0]) == 1
    finally:
        await asyncio.gather(*(d.dispose() for d in databases))


async def test_enqueue_unique_adds_new_keys_and_joins_held_ones(database: Database) -> None:
    async with database.transaction() as session:
        held = await enqueue(session, "tests.noop", {"n": 0}, unique_key="held")
    run_at = utcnow() + timedelta(minutes=5)
    async with database.transaction() as session:
        enqueued = await job_queue.enqueue_unique(
            session, "tests.noop", {"b": {"n": 2}, "held": {"n": 9}, "a": {"n": 1}}, run_at=run_at
        )
    assert enqueued["held"] == job_queue.Enqueued(held.id, created=False)
    assert enqueued["a"].created
    assert enqueued["b"].created
    stored = await jobs_by_id(database)
    assert [stored[enqueued[k].id].payload for k in ("a", "b", "held")] == [
        {"n": 1},
        {"n": 2},
        {"n": 0},  # the holder is unchanged
    ]
    assert {stored[enqueued[k].id].unique_key for k in ("a", "b")} == {"a", "b"}
    assert all(
        abs(stored[enqueued[k].id].run_at - run_at) < timedelta(seconds=1) for k in ("a", "b")
    )
    assert await _count(database) == 3


async def test_enqueue_unique_takes_each_keys_own_run_at(database: Database) -> None:
    soon, later = utcnow() + timedelta(minutes=1), utcnow() + timedelta(minutes=9)
    async with database.transaction() as session:
        enqueued = await job_queue.enqueue_unique(
            session, "tests.noop", {"a": None, "b": None}, run_at={"a": soon, "b": later}
        )
    stored = await jobs_by_id(database)
    assert abs(stored[enqueued["a"].id].run_at - soon) < timedelta(seconds=1)
    assert abs(stored[enqueued["b"].id].run_at - later) < timedelta(seconds=1)


async def test_only_a_job_due_now_wakes_the_workers(database: Database) -> None:
    woken = asyncio.Event()
    job_queue.add_local_wakeup(woken)
    try:
        later = utcnow() + timedelta(minutes=5)
        async with database.transaction() as session:
            await enqueue(session, "tests.noop", {"n": 1}, run_at=later)
            await job_queue.enqueue_unique(session, "tests.noop", {"k": None}, run_at=later)
        assert not woken.is_set(), "a delayed job woke the workers for nothing to claim"
        async with database.transaction() as session:
            await job_queue.enqueue_unique(session, "tests.noop", {"due": None})
        assert woken.is_set()
        woken.clear()
        async with database.transaction() as session:
            await enqueue(session, "tests.noop", {"n": 2})
        assert woken.is_set()
    finally:
        job_queue.remove_local_wakeup(woken)


@pytest.mark.parametrize("unique", [False, True])
async def test_a_job_due_soon_wakes_the_workers_when_it_falls_due(
    database: Database, unique: bool
) -> None:
    woken = asyncio.Event()
    job_queue.add_local_wakeup(woken)
    try:
        due = utcnow() + timedelta(seconds=0.3)
        async with database.transaction() as session:
            if unique:
                await job_queue.enqueue_unique(session, "tests.noop", {"k": None}, run_at=due)
            else:
                await enqueue(session, "tests.noop", {"n": 1}, run_at=due)
        assert not woken.is_set()
        await asyncio.wait_for(woken.wait(), 5)
        assert utcnow() >= due
    finally:
        job_queue.remove_local_wakeup(woken)


async def test_a_job_due_past_the_horizon_is_left_to_the_poll(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_queue, "DUE_WAKEUP_HORIZON", 0.1)
    woken = asyncio.Event()
    job_queue.add_local_wakeup(woken)
    try:
        async with database.transaction() as session:
            await enqueue(session, "tests.noop", {"n": 1}, run_at=utcnow() + timedelta(seconds=0.3))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(woken.wait(), 0.8)
    finally:
        job_queue.remove_local_wakeup(woken)


async def test_concurrent_enqueue_unique_of_overlapping_keys_makes_one_job_each(
    job_settings: Settings,
) -> None:
    databases = [Database(job_settings) for _ in range(6)]
    keys = [f"k{n}" for n in range(20)]

    async def enqueue_in(database: Database, index: int) -> dict[str, int]:
        # Each enqueuer names the keys in its own order.
        mine = keys[index:] + keys[:index]
        async with database.transaction() as session:
            enqueued = await job_queue.enqueue_unique(
                session, "tests.noop", {key: {"by": index} for key in mine}
            )
        return {key: e.id for key, e in enqueued.items()}

    try:
        results = await asyncio.gather(*(enqueue_in(d, i) for i, d in enumerate(databases)))
        for key in keys:
            assert len({result[key] for result in results}) == 1
        assert await _count(databases[0]) == len(keys)
    finally:
        await asyncio.gather(*(d.dispose() for d in databases))


async def test_concurrent_claimers_never_claim_a_job_twice(
    job_settings: Settings, database: Database
) -> None:
    async with database.transaction() as session:
        for n in range(150):
            await enqueue(session, "tests.noop", {"n": n})
    claimers = [Database(job_settings) for _ in range(4)]

    async def claim_all(index: int, claimer: Database) -> list[int]:
        taken: list[int] = []
        while True:
            async with claimer.transaction() as session:
                batch = await job_queue.claim(session, f"w{index}", "default", 7, 30)
            if not batch:
                return taken
            taken.extend(j.id for j in batch)

    try:
        results = await asyncio.gather(*(claim_all(i, c) for i, c in enumerate(claimers)))
    finally:
        await asyncio.gather(*(c.dispose() for c in claimers))
    claimed = [job_id for taken in results for job_id in taken]
    assert len(claimed) == len(set(claimed)) == 150


async def test_claims_take_priority_then_age_and_skip_future_jobs(database: Database) -> None:
    async with database.transaction() as session:
        late = await enqueue(session, "tests.noop", priority=5)
        urgent = await enqueue(session, "tests.noop", priority=-1)
        await enqueue(session, "tests.noop", delay_seconds=3600)
        normal = await enqueue(session, "tests.noop")
        other_queue = await enqueue(session, "tests.noop", queue="sync")
    async with database.transaction() as session:
        first = await job_queue.claim(session, "w", "default", 2, 30)
        rest = await job_queue.claim(session, "w", "default", 10, 30)
    # Within one claimed batch the order does not matter: those jobs start together.
    assert {j.id for j in first} == {urgent.id, normal.id}
    assert [j.id for j in rest] == [late.id]
    assert other_queue.id not in {j.id for j in first + rest}


async def test_a_worker_that_lost_its_lease_changes_nothing(database: Database) -> None:
    async with database.transaction() as session:
        enqueued = await enqueue(session, "tests.noop")
    async with database.transaction() as session:
        await job_queue.claim(session, "old", "default", 1, 30)
        # The old worker stops heartbeating: its lease runs out and the job is reaped.
        await session.execute(update(Job).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    async with database.transaction() as session:
        assert await job_queue.reap(session) == 1
    async with database.transaction() as session:
        [again] = await job_queue.claim(session, "new", "default", 1, 30)
        assert await job_queue.heartbeat(session, "old", [enqueued.id], 30) == set()
        await job_queue.complete(session, "old", [(enqueued.id, "stale")])
    taken_over = await job(database, enqueued.id)
    assert (taken_over.state, taken_over.locked_by, again.attempts) == ("running", "new", 2)
    assert taken_over.errors[-1]["type"] == "LeaseExpired"

    async with database.transaction() as session:
        await job_queue.complete(session, "new", [(enqueued.id, {"ok": True})])
    done = await job(database, enqueued.id)
    assert (done.state, done.result, done.locked_by) == ("succeeded", {"ok": True}, None)


async def test_a_reaped_job_with_no_attempts_left_is_dead_and_frees_its_key(
    database: Database,
) -> None:
    async with database.transaction() as session:
        await enqueue(session, "tests.noop", unique_key="once", max_attempts=1)
        await job_queue.claim(session, "gone", "default", 1, 30)
        await session.execute(update(Job).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    async with database.transaction() as session:
        await job_queue.reap(session)
        again = await enqueue(session, "tests.noop", unique_key="once")
    states = sorted(j.state for j in (await jobs_by_id(database)).values())
    assert again.created
    assert states == [JobState.dead.value, JobState.queued.value]


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    backoff = Backoff(base_seconds=2, max_seconds=100, jitter=0.25)
    for attempt, middle in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(middle * 0.75 <= d <= middle * 1.25 for d in delays)
        assert len(set(delays)) > 1
    assert all(backoff.delay(30) <= 100 for _ in range(50))


def test_job_tokens_name_one_job() -> None:
    token = job_queue.job_token("secret", 7)
    assert job_queue.token_allows("secret", 7, token)
    assert not job_queue.token_allows("secret", 8, token)
    assert not job_queue.token_allows("other secret", 7, token)


async def test_enqueues_reuse_their_compiled_statements(database: Database) -> None:
    """Each enqueue statement is compiled once, whatever its number of rows: a statement
    carrying many rows' values could not be cached and was compiled on every call."""
    cache_stats: list[CacheStats] = []

    def record(*args: Any) -> None:
        statement, context = args[2], args[4]
        if " jobs" in statement:
            cache_stats.append(context.cache_hit)

    async def enqueue_keys(keys: list[str]) -> None:
        async with database.transaction() as session:
            await job_queue.enqueue_unique(session, "tests.noop", {key: {} for key in keys})
            await enqueue(session, "tests.noop", {}, unique_key=f"{keys[0]}-alone")
            await enqueue(session, "tests.noop", {})

    await enqueue_keys(["a", "b"])
    engine = database.write_engine.sync_engine
    event.listen(engine, "after_cursor_execute", record)
    try:
        await enqueue_keys(["c", "d", "e"])
    finally:
        event.remove(engine, "after_cursor_execute", record)
    assert len(cache_stats) == 4  # the holders' read, then three inserts
    assert set(cache_stats) == {CacheStats.CACHE_HIT}
    assert await _count(database) == 9
