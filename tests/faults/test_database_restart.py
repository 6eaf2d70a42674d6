"""PostgreSQL restarted under load: requests fail cleanly (503 in the error shape, with
Retry-After), /ready says so, the service comes back by itself, no acknowledged write is
lost, and the worker resumes."""

from __future__ import annotations

import asyncio
import time

import httpx

from junction.platform.db import Database
from junction.platform.jobs import enqueue
from junction.platform.jobs.models import JobState
from tests.support import jobs as _test_jobs  # noqa: F401  (registers tests.noop)
from tests.support.chat import new_application, new_chat
from tests.support.faults import (
    Answers,
    create_messages,
    fault_settings,
    junction_on,
    stored_numbers,
)
from tests.support.queue import finished_jobs
from tests.support.servers import private_postgres, private_redis

LOAD_SECONDS = 12.0
RESTART_AFTER = 3.0


async def test_a_postgres_restart_under_load_loses_nothing_acknowledged() -> None:
    with private_postgres() as postgres, private_redis() as redis:
        settings = await fault_settings(postgres, redis)
        database = Database(settings)
        try:
            with junction_on(settings) as server:
                async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as client:
                    token = await new_application(client)
                    chat = await new_chat(client, token)
                    answers = Answers()
                    readiness: list[int] = []
                    until = time.monotonic() + LOAD_SECONDS
                    load = asyncio.create_task(
                        create_messages(
                            [server.base_url], token, chat, answers, until=until, concurrency=8
                        )
                    )
                    await asyncio.sleep(RESTART_AFTER)
                    restart = asyncio.create_task(asyncio.to_thread(postgres.restart))
                    while not restart.done():
                        readiness.append((await client.get("/ready")).status_code)
                        await asyncio.sleep(0.1)
                    await restart
                    await load
                    logs = server.logs()
                    # Back by itself: the next writes and reads succeed.
                    after = await client.post(
                        f"/applications/{token}/chats/{chat}/messages",
                        json={"message": {"body": "after the restart"}},
                    )
                    assert after.status_code == 202, after.text
                    assert (await client.get("/ready")).status_code == 200
                async with database.transaction() as session:
                    resumed = (await enqueue(session, "tests.noop", None)).id
                [job] = await finished_jobs(database, [resumed], timeout=30)
                assert job.state == JobState.succeeded.value
            stored = await stored_numbers(database, token, chat)
        finally:
            await database.dispose()
    errors = [line for line in logs.splitlines() if '"level": "error"' in line]
    assert answers.bad_shapes == [], errors[:3]
    assert set(answers.statuses) <= {202, 503}, (answers.statuses, errors[:3])
    assert answers.statuses[202] > 0
    assert 503 in readiness
    lost = set(answers.acknowledged) - set(stored)
    assert lost == set(), f"acknowledged but not stored: {sorted(lost)[:20]}"
    assert len(set(answers.acknowledged)) == len(answers.acknowledged)
