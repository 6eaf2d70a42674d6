"""Who may see and do what in the console: login, the session cookie, read-only keys,
cross-site requests, revoked keys, logout; every action in the audit log."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import update

from junction.platform.auth import ApiKey, Scope
from junction.platform.db import Database, utcnow
from junction.platform.jobs import enqueue
from junction.platform.jobs.models import Job, JobState
from junction.settings import Settings
from tests.support import jobs as _test_jobs  # noqa: F401  (registers tests.noop)
from tests.support.console import api_key, audit_entries, log_in, post_form, session_token
from tests.support.queue import job

PAGES = [
    "/console",
    "/console/jobs",
    "/console/jobs/1",
    "/console/queues",
    "/console/schedules",
    "/console/integrations",
    "/console/channels",
    "/console/audit",
    "/console/audit/1",
    "/console/overview/stream",
]


async def dead_job(database: Database) -> int:
    async with database.transaction() as session:
        enqueued = await enqueue(session, "tests.noop", {"n": 1})
        await session.execute(
            update(Job).where(Job.id == enqueued.id).values(state=JobState.dead.value)
        )
    return enqueued.id


@pytest.mark.parametrize("path", PAGES)
async def test_nothing_is_readable_before_login(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login?next=")


async def test_an_action_before_login_is_refused(
    client: httpx.AsyncClient, database: Database
) -> None:
    job_id = await dead_job(database)
    response = await post_form(client, f"/console/jobs/{job_id}/retry", "made-up")
    assert response.status_code == 401
    assert (await job(database, job_id)).state == JobState.dead.value


async def test_a_wrong_or_scopeless_key_does_not_log_in(
    client: httpx.AsyncClient, database: Database
) -> None:
    assert (await log_in(client, "jk_0000_nothing")).status_code == 401
    write_only = await api_key(database, Scope.write)
    response = await log_in(client, write_only)
    assert response.status_code == 401
    assert "lacks the read scope" in response.text
    assert "set-cookie" not in response.headers


async def test_login_sets_a_strict_http_only_cookie(
    client: httpx.AsyncClient, database: Database
) -> None:
    response = await log_in(client, await api_key(database, Scope.admin))
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/console" in cookie
    assert "max-age=28800" in cookie  # the default: eight hours
    assert "secure" not in cookie  # plain HTTP here; see the TLS test
    assert (await client.get("/console")).status_code == 200


async def test_the_cookie_is_secure_behind_tls(started_app: object, database: Database) -> None:
    transport = httpx.ASGITransport(app=started_app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://junction.test") as tls:
        response = await log_in(tls, await api_key(database, Scope.read))
    assert "secure" in response.headers["set-cookie"].lower()


async def test_a_cross_site_login_is_refused(client: httpx.AsyncClient, database: Database) -> None:
    key = await api_key(database, Scope.admin)
    response = await client.post(
        "/console/login",
        files={"key": (None, key)},
        headers={"Origin": "https://elsewhere.example"},
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


async def test_a_read_only_key_sees_no_action_and_its_forged_posts_are_refused(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    job_id = await dead_job(database)
    await log_in(client, await api_key(database, Scope.read, name="viewer"))
    for page in (
        "/console/jobs",
        f"/console/jobs/{job_id}",
        "/console/queues",
        "/console/schedules",
    ):
        forms = re.findall(r'<form method="post" action="([^"]+)"', (await client.get(page)).text)
        assert forms == ["/console/logout"], page
    token = await session_token(client)
    for path in (f"/console/jobs/{job_id}/retry", "/console/queues/default/pause"):
        response = await post_form(client, path, token)
        assert response.status_code == 403
        assert "read-only" in response.text
    assert (await job(database, job_id)).state == JobState.dead.value
    entries = await audit_entries(database)
    assert [(e.key_name, e.result) for e in entries] == [("viewer", "refused")] * 2


async def test_a_cross_site_post_is_refused_even_with_the_session(
    client: httpx.AsyncClient, database: Database
) -> None:
    job_id = await dead_job(database)
    await log_in(client, await api_key(database, Scope.admin))
    token = await session_token(client)
    forged = await client.post(
        f"/console/jobs/{job_id}/retry",
        files={"csrf": (None, token)},
        headers={"Origin": "https://elsewhere.example"},
    )
    assert forged.status_code == 403
    no_origin = await client.post(f"/console/jobs/{job_id}/retry", files={"csrf": (None, token)})
    assert no_origin.status_code == 403
    no_token = await post_form(client, f"/console/jobs/{job_id}/retry", None)
    assert no_token.status_code == 403
    assert (await job(database, job_id)).state == JobState.dead.value
    assert [e.result for e in await audit_entries(database)] == ["refused"] * 3


async def test_a_revoked_key_ends_its_sessions(
    client: httpx.AsyncClient, database: Database
) -> None:
    key = await api_key(database, Scope.admin)
    await log_in(client, key)
    assert (await client.get("/console")).status_code == 200
    async with database.transaction() as session:
        await session.execute(update(ApiKey).values(revoked_at=utcnow()))
    assert (await client.get("/console")).status_code == 303


async def test_an_expired_or_tampered_session_is_refused(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await log_in(client, await api_key(database, Scope.admin))
    cookie = client.cookies["junction_console"]
    client.cookies.set("junction_console", cookie[:-2] + "xx", path="/console")
    assert (await client.get("/console")).status_code == 303

    # A cookie signed nine hours ago: older than the default session of eight hours.
    class NineHoursAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 9 * 3600

    secret = settings.secret_key.get_secret_value()
    data = URLSafeTimedSerializer(secret, salt="junction.console").loads(cookie)
    old = URLSafeTimedSerializer(secret, salt="junction.console", signer=NineHoursAgo).dumps(data)
    client.cookies.set("junction_console", str(old), path="/console")
    assert (await client.get("/console")).status_code == 303


async def test_logout_ends_the_session(client: httpx.AsyncClient, database: Database) -> None:
    await log_in(client, await api_key(database, Scope.read))
    response = await post_form(client, "/console/logout", None)
    assert response.status_code == 303
    assert 'junction_console=""' in response.headers["set-cookie"]
    assert (await client.get("/console")).status_code == 303
