"""What the fault suites share: Junction on a private PostgreSQL and Redis, a chat to write
to, and a load that records every answer."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from junction.chat.models import Application, Chat, Message
from junction.platform.db import Database
from junction.platform.migrations import upgrade_to_head
from junction.settings import Settings
from tests.support.chat import GENEROUS_LIMITS
from tests.support.live import LiveServer, start_live_server
from tests.support.servers import PrivatePostgres, PrivateRedis


async def fault_settings(postgres: PrivatePostgres, redis: PrivateRedis | None) -> Settings:
    """Settings on the private servers, with the schema migrated."""
    settings = Settings(
        env="test",
        database_url=postgres.url,
        redis_url=redis.url if redis else None,
        migrate_on_start=False,
    )
    await asyncio.to_thread(upgrade_to_head, settings)
    return settings


@contextmanager
def junction_on(settings: Settings, **extra_env: str) -> Iterator[LiveServer]:
    """`junction serve` with its embedded worker, the test jobs loaded, limits lifted."""
    env = {"JUNCTION_RATE_LIMITS": GENEROUS_LIMITS, "JUNCTION_JOB_MODULES": "tests.support.jobs"}
    with start_live_server(settings, **{**env, **extra_env}) as server:
        yield server


@dataclass
class Answers:
    """Every answer of a load, by status; the numbers of the acknowledged messages."""

    statuses: Counter[int] = field(default_factory=Counter)
    acknowledged: list[int] = field(default_factory=list)
    unanswered: int = 0
    bad_shapes: list[str] = field(default_factory=list)

    def record(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code == 202:
            self.acknowledged.append(int(response.json()["number"]))
        elif response.status_code >= 500:
            body = response.json()
            if set(body) != {"errors"} or (
                response.status_code == 503 and "retry-after" not in response.headers
            ):
                self.bad_shapes.append(f"{response.status_code} {response.headers} {body}")


async def create_messages(
    base_urls: list[str], token: str, chat: int, answers: Answers, *, until: float, concurrency: int
) -> None:
    """Message creates spread over ``base_urls`` until ``until`` (a monotonic time)."""

    async def client_loop(index: int) -> None:
        base = base_urls[index % len(base_urls)]
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            n = 0
            while time.monotonic() < until:
                n += 1
                body = {"message": {"body": f"fault load {index} {n} zebra"}}
                try:
                    response = await client.post(
                        f"/applications/{token}/chats/{chat}/messages", json=body
                    )
                except httpx.HTTPError:
                    answers.unanswered += 1
                    await asyncio.sleep(0.05)
                    continue
                answers.record(response)
                if response.status_code == 503:
                    await asyncio.sleep(0.05)

    await asyncio.gather(*(client_loop(i) for i in range(concurrency)))


async def stored_numbers(database: Database, token: str, chat: int) -> list[int]:
    async with database.reading() as session:
        chat_id = await session.scalar(
            select(Chat.id)
            .join(Application, Application.id == Chat.application_id)
            .where(Chat.number == chat, Application.token == token)
        )
        rows = await session.scalars(select(Message.number).where(Message.chat_id == chat_id))
        return sorted(rows.all())
