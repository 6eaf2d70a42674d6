"""chats_count and messages_count: updated by the follow-up job, reconciled on demand."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import httpx
from sqlalchemy import delete, select, update

from junction.chat.models import Application, Chat
from junction.chat.service import (
    COUNTS_SETTLE_SECONDS,
    COUNTS_WINDOW_SECONDS,
    REFRESH_COUNTS_JOB,
)
from junction.platform.db import Database, utcnow
from junction.platform.jobs.models import Job
from junction.settings import Settings
from tests.support.chat import new_application, new_chat, new_message
from tests.support.live import LiveServer, environment_for
from tests.support.waiting import eventually


async def test_counts_follow_creates(chat_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=chat_server.base_url) as client:
        token = await new_application(client)
        for _ in range(3):
            await new_chat(client, token)
        for index in range(4):
            await new_message(client, token, 2, f"message {index}")

        async def counted() -> bool:
            application = (await client.get(f"/applications/{token}")).json()
            chats = (await client.get(f"/applications/{token}/chats")).json()
            return application["chats_count"] == 3 and [c["messages_count"] for c in chats] == [
                0,
                4,
                0,
            ]

        await eventually(counted, what="the counts update")
        accepted = await client.post(
            f"/applications/{token}/chats/2/messages", json={"message": {"body": "five"}}
        )

        async def job_done() -> bool:
            job = (await client.get(accepted.headers["Location"])).json()
            return bool(job["state"] == "succeeded")

        await eventually(job_done, what="the counts job succeeding")
        job = (await client.get(accepted.headers["Location"])).json()
        assert job["result"] == {"messages_count": 5}


async def test_the_chats_counts_jobs_fall_due_spread_over_the_window(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = await new_application(client)
    started = utcnow()
    for number in range(1, 11):
        await new_chat(client, token)
        await new_message(client, token, number, "hello")
    created = utcnow()
    database = Database(settings)
    try:
        async with database.reading() as session:
            jobs = (await session.scalars(select(Job).where(Job.name == REFRESH_COUNTS_JOB))).all()
    finally:
        await database.dispose()
    due = sorted(job.run_at for job in jobs if "chat" in job.payload)
    assert len(due) == 10
    latest = created + timedelta(seconds=COUNTS_WINDOW_SECONDS + COUNTS_SETTLE_SECONDS)
    assert all(started < run_at <= latest for run_at in due)
    # Not all at one instant: a recount of every chat at once delayed the creates beside it.
    assert due[-1] - due[0] > timedelta(seconds=COUNTS_WINDOW_SECONDS / 2)


async def test_reconcile_corrects_tampered_counts(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = await new_application(client)
    for _ in range(2):
        await new_chat(client, token)
    await new_message(client, token, 1, "one")
    await new_message(client, token, 1, "two")
    database = Database(settings)
    try:
        async with database.transaction() as session:
            # Without their follow-up jobs, only the reconciliation can repair the counts.
            await session.execute(delete(Job))
            await session.execute(update(Chat).values(messages_count=42))
            await session.execute(update(Application).values(chats_count=7))
    finally:
        await database.dispose()
    assert (await client.get(f"/applications/{token}")).json()["chats_count"] == 7

    result = subprocess.run(
        [sys.executable, "-m", "junction", "counts", "reconcile"],
        env=environment_for(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Corrected 1 application and 2 chat counts" in " ".join(result.stdout.split())
    assert (await client.get(f"/applications/{token}")).json()["chats_count"] == 2
    chats = (await client.get(f"/applications/{token}/chats")).json()
    assert [chat["messages_count"] for chat in chats] == [2, 0]
