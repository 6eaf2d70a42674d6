"""The console's actions on real jobs, queues, schedules and dead letters, each one in the
audit log; the job list's filters and the detail's masking."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import func, select, update

from junction.console.models import AuditEntry
from junction.platform.auth import Scope
from junction.platform.db import Database, utcnow
from junction.platform.integrations.models import DeadLetter
from junction.platform.jobs import enqueue
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs.models import Job, JobState, Schedule
from junction.platform.jobs.registry import JobRegistry
from junction.platform.jobs.scheduler import Scheduler
from junction.settings import Settings
from junction.wellness.models import Client
from tests.support import jobs as _test_jobs  # noqa: F401  (registers tests.noop)
from tests.support.console import (
    api_key,
    audit_entries,
    log_in,
    post_form,
    session_token,
    wellness_client,
    wellness_dead_letter,
)
from tests.support.jobs import noop
from tests.support.queue import job
from tests.support.waiting import eventually
from tests.support.workers import worker_running


async def admin(client: httpx.AsyncClient, database: Database) -> str:
    await log_in(client, await api_key(database, Scope.admin, name="ops"))
    return await session_token(client)


async def jobs_in_state(
    database: Database, state: JobState, count: int, **fields: object
) -> list[int]:
    ids = []
    async with database.transaction() as session:
        for n in range(count):
            payload = fields.get("payload", {"n": n})
            enqueued = await enqueue(
                session,
                "tests.noop",
                payload,
                unique_key=fields.get("unique_key"),  # type: ignore[arg-type]
            )
            ids.append(enqueued.id)
        await session.execute(update(Job).where(Job.id.in_(ids)).values(state=state.value))
    return ids


def notice(response: httpx.Response) -> str:
    return str(httpx.URL(response.headers["location"]).params.get("notice"))


async def test_retry_discard_and_run_now_of_one_job(
    client: httpx.AsyncClient, database: Database
) -> None:
    token = await admin(client, database)
    dead, queued_later = await jobs_in_state(database, JobState.dead, 1) + [0]
    async with database.transaction() as session:
        later = await enqueue(session, "tests.noop", None, run_at=utcnow() + timedelta(hours=1))
    queued_later = later.id

    response = await post_form(client, f"/console/jobs/{dead}/retry", token)
    assert response.status_code == 303
    assert notice(response) == f"job {dead} is now queued"
    assert (await job(database, dead)).state == JobState.queued.value

    await post_form(client, f"/console/jobs/{queued_later}/run-now", token)
    assert (await job(database, queued_later)).run_at <= utcnow()

    await post_form(client, f"/console/jobs/{dead}/discard", token)
    assert (await job(database, dead)).state == JobState.discarded.value

    refused = await post_form(client, f"/console/jobs/{dead}/run-now", token)
    assert "only queued jobs are run now" in notice(refused)
    entries = await audit_entries(database)
    assert [(e.action, e.result, e.key_name) for e in entries] == [
        ("job.retry", "ok", "ops"),
        ("job.run-now", "ok", "ops"),
        ("job.discard", "ok", "ops"),
        ("job.run-now", "refused", "ops"),
    ]


async def test_a_retry_whose_unique_key_is_held_names_the_holder(
    client: httpx.AsyncClient, database: Database
) -> None:
    token = await admin(client, database)
    [dead] = await jobs_in_state(database, JobState.dead, 1, unique_key="report:7")
    async with database.transaction() as session:
        holder = (await enqueue(session, "tests.noop", None, unique_key="report:7")).id

    response = await post_form(client, f"/console/jobs/{dead}/retry", token)
    assert f"job {holder} holds unique key 'report:7'" in notice(response)
    assert (await job(database, dead)).state == JobState.dead.value
    page = (await client.get(f"/console/jobs/{dead}")).text
    assert f'held now by <a href="/console/jobs/{holder}">job {holder}</a>' in page


async def test_jobs_filter_by_payload_name_state_and_page_on(
    client: httpx.AsyncClient, database: Database
) -> None:
    await admin(client, database)
    async with database.transaction() as session:
        for n in range(60):
            payload = {
                "user_id": n % 3,
                "kind": "report",
                "meta": {"region": "eu" if n % 2 else "us"},
            }
            await enqueue(session, "tests.noop", payload)
        await enqueue(session, "tests.echo", {"user_id": "1"})

    def ids(page: str) -> list[int]:
        return [int(i) for i in re.findall(r'<td><a href="/console/jobs/(\d+)">', page)]

    first = (await client.get("/console/jobs", params={"payload": "user_id=1"})).text
    assert len(ids(first)) == 20  # the integer 1 only: the string "1" is another value
    as_text = (await client.get("/console/jobs", params={"payload": 'user_id="1"'})).text
    assert len(ids(as_text)) == 1
    nested = await client.get("/console/jobs", params={"payload": "user_id=1, meta.region=eu"})
    assert len(ids(nested.text)) == 10
    by_name = await client.get("/console/jobs", params={"name": "tests.echo", "state": "queued"})
    assert len(ids(by_name.text)) == 1

    everything = (await client.get("/console/jobs")).text
    assert len(ids(everything)) == 50
    older = re.search(r'<a href="([^"]+)" rel="next">', everything)
    assert older is not None
    rest = (await client.get(older.group(1).replace("&amp;", "&"))).text
    assert len(ids(rest)) == 11
    assert max(ids(rest)) < min(ids(everything))


async def test_a_bad_filter_answers_with_the_reason(
    client: httpx.AsyncClient, database: Database
) -> None:
    await admin(client, database)
    for params in ({"payload": "no equals sign"}, {"state": "sleeping"}, {"since": "yesterday"}):
        response = await client.get("/console/jobs", params=params)
        assert response.status_code == 422, params
        assert 'class="notice error"' in response.text


async def test_the_detail_masks_sensitive_payload_keys(
    client: httpx.AsyncClient, database: Database
) -> None:
    await admin(client, database)
    async with database.transaction() as session:
        enqueued = await enqueue(
            session,
            "tests.noop",
            {"user": {"Password": "hunter2", "email": "a@example.com"}, "token": "t0k", "n": 5},
        )
    page = (await client.get(f"/console/jobs/{enqueued.id}")).text
    for secret in ("hunter2", "a@example.com", "t0k"):
        assert secret not in page
    assert "&#34;n&#34;: 5" in page or '"n": 5' in page


async def test_bulk_discard_of_every_matching_job_runs_as_a_job_with_progress(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    token = await admin(client, database)
    await jobs_in_state(database, JobState.dead, 1_000, payload={"batch": "nightly"})
    await jobs_in_state(database, JobState.dead, 5, payload={"batch": "other"})

    response = await post_form(
        client, "/console/jobs/bulk", token, action="discard", state="dead", payload="batch=nightly"
    )
    assert response.status_code == 303
    entry_path = response.headers["location"].split("?")[0]
    assert "discard of 1000 jobs started" in notice(response)
    async with worker_running(database, settings, ["default:2"]):

        async def finished() -> AuditEntry | None:
            async with database.reading() as session:
                entry = await session.scalar(
                    select(AuditEntry).where(AuditEntry.action == "jobs.bulk_discard")
                )
            return entry if entry is not None and entry.result == "ok" else None

        entry = await eventually(finished, what="the bulk discard finishing")
    assert (entry.done, entry.total, entry.detail) == (1000, 1000, "1000 done, 0 skipped")
    async with database.reading() as session:
        states = dict(
            (
                await session.execute(
                    select(Job.state, func.count())
                    .where(Job.name == "tests.noop")
                    .group_by(Job.state)
                )
            ).all()
        )
    assert states == {"discarded": 1000, "dead": 5}
    progress = (await client.get(entry_path)).text
    assert 'value="1000"' in progress
    assert "1000 of 1000" in progress


async def test_a_paused_queue_is_not_claimed_until_resumed(
    client: httpx.AsyncClient, database: Database
) -> None:
    token = await admin(client, database)
    await post_form(client, "/console/queues/default/pause", token)
    async with database.transaction() as session:
        await enqueue(session, "tests.noop", None)
        assert await job_queue.claim(session, "w1", "default", 10, 30) == []
        assert len(await job_queue.claim(session, "w1", "sync", 10, 30)) == 0
    page = (await client.get("/console/queues")).text
    assert "Resume default" in page
    await post_form(client, "/console/queues/default/resume", token)
    async with database.transaction() as session:
        assert len(await job_queue.claim(session, "w1", "default", 10, 30)) == 1
    assert [e.action for e in await audit_entries(database)] == ["queue.pause", "queue.resume"]


async def test_a_disabled_schedule_does_not_fire_until_enabled(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    token = await admin(client, database)
    jobs = JobRegistry()
    jobs.job("tests.noop")(noop)
    jobs.schedule("tests.schedule", "tests.noop", every=60)
    scheduler = Scheduler(database, settings, jobs_registry=jobs)
    await scheduler.sync()
    await post_form(client, "/console/schedules/tests.schedule/disable", token)
    async with database.transaction() as session:
        await session.execute(update(Schedule).values(next_run_at=utcnow() - timedelta(minutes=1)))
    assert await scheduler.tick() == 0
    assert "enable" in (await client.get("/console/schedules")).text.lower()
    await post_form(client, "/console/schedules/tests.schedule/enable", token)
    assert await scheduler.tick() == 1
    refused = await post_form(client, "/console/schedules/no.such/disable", token)
    assert "does not exist" in notice(refused)


async def test_run_a_schedule_now_and_start_a_sync(
    client: httpx.AsyncClient, database: Database
) -> None:
    token = await admin(client, database)
    async with database.transaction() as session:
        session.add(Schedule(name="events.sync.interval", job_name="events.sync", spec="every:300"))
    response = await post_form(client, "/console/schedules/events.sync.interval/run-now", token)
    assert "queued" in notice(response)
    again = await post_form(client, "/console/integrations/events/sync", token, trigger="pull now")
    assert "already queued or running" in notice(again)
    unknown = await post_form(client, "/console/integrations/events/sync", token, trigger="nope")
    assert "has no sync" in notice(unknown)
    async with database.reading() as session:
        names = list((await session.scalars(select(Job.name))).all())
    assert names == ["events.sync"]


async def test_replay_a_dead_letter_stores_the_record_or_keeps_it_with_the_new_reason(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    token = await admin(client, database)
    good = await wellness_dead_letter(database, "c-1", wellness_client("c-1", "Ada"))
    bad = await wellness_dead_letter(database, "c-2", {"id": "c-2", "first_name": 5})
    for letter in (good, bad):
        response = await post_form(client, f"/console/dead-letters/{letter}/replay", token)
        assert "replay job" in notice(response)
    async with worker_running(database, settings, ["default:1"]):

        async def replays_done() -> bool:
            async with database.reading() as session:
                done = await session.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.state == JobState.succeeded.value)
                )
            return done == 2

        await eventually(replays_done, what="both replays")
    async with database.reading() as session:
        letters = {d.id: d for d in (await session.scalars(select(DeadLetter))).all()}
        clients = list((await session.scalars(select(Client))).all())
    assert letters[good].resolution == "replayed"
    assert letters[bad].resolved_at is None
    assert "first_name" in letters[bad].error
    assert [(c.external_id, c.first_name) for c in clients] == [("c-1", "Ada")]

    dismissed = await post_form(client, f"/console/dead-letters/{bad}/dismiss", token)
    assert notice(dismissed) == "dismissed"
    page = (await client.get("/console/integrations")).text
    assert f"letter-{bad}" not in page
