"""Job status over HTTP, operator actions over HTTP and the CLI, and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from junction.cli import app as cli
from junction.platform.auth import Scope, create_api_key
from junction.platform.db import Database
from junction.platform.jobs import enqueue, job_token
from junction.platform.jobs.metrics import JOB_STATS
from junction.platform.jobs.models import Job
from junction.settings import Settings, get_settings
from tests.support.queue import job


async def _key(database: Database, *scopes: Scope) -> tuple[str, dict[str, str]]:
    async with database.transaction() as session:
        api_key, plain = await create_api_key(session, "test", scopes)
    return api_key.id, {"Authorization": f"Bearer {plain}"}


async def _job(database: Database, created_by: str | None = None, state: str = "queued") -> int:
    async with database.transaction() as session:
        job_id = (await enqueue(session, "tests.echo", {"x": 1}, created_by=created_by)).id
        await session.execute(update(Job).where(Job.id == job_id).values(state=state))
    return job_id


async def test_the_creating_key_and_admins_read_a_job_others_get_404(
    client: httpx.AsyncClient, database: Database
) -> None:
    owner_id, owner = await _key(database, Scope.read)
    _, stranger = await _key(database, Scope.read)
    _, admin = await _key(database, Scope.admin)
    job_id = await _job(database, created_by=owner_id)

    response = await client.get(f"/api/v1/jobs/{job_id}", headers=owner)
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "queued"
    assert (body["queue"], body["attempts"], body["last_error"]) == ("default", 0, None)
    assert body["created_at"].endswith("Z")
    assert (await client.get(f"/api/v1/jobs/{job_id}", headers=admin)).status_code == 200
    hidden = await client.get(f"/api/v1/jobs/{job_id}", headers=stranger)
    assert hidden.status_code == 404
    assert hidden.json() == {"errors": [f"job {job_id} does not exist"]}


async def test_a_job_token_reads_that_job_only(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    job_id = await _job(database)
    other = await _job(database)
    token = job_token(settings.secret_key.get_secret_value(), job_id)
    assert (await client.get(f"/api/v1/jobs/{job_id}", params={"token": token})).status_code == 200
    by_header = await client.get(f"/api/v1/jobs/{job_id}", headers={"X-Job-Token": token})
    assert by_header.status_code == 200
    assert (await client.get(f"/api/v1/jobs/{other}", params={"token": token})).status_code == 404
    garbled = await client.get(f"/api/v1/jobs/{job_id}", params={"token": "jöb"})
    assert garbled.status_code == 404


async def test_unknown_jobs_and_missing_credentials(
    client: httpx.AsyncClient, database: Database
) -> None:
    _, admin = await _key(database, Scope.admin)
    missing = await client.get("/api/v1/jobs/999999", headers=admin)
    assert missing.status_code == 404
    assert missing.json() == {"errors": ["job 999999 does not exist"]}
    job_id = await _job(database)
    assert (await client.get(f"/api/v1/jobs/{job_id}")).status_code == 401


@pytest.mark.parametrize("job_id", ["0", "-1", str(2**63), "2562266264271591571456"])
async def test_job_ids_outside_the_database_range_are_refused(
    client: httpx.AsyncClient, database: Database, job_id: str
) -> None:
    _, admin = await _key(database, Scope.admin)
    for response in (
        await client.get(f"/api/v1/jobs/{job_id}", headers=admin),
        await client.post(f"/api/v1/jobs/{job_id}/retry", headers=admin),
        await client.post(f"/api/v1/jobs/{job_id}/discard", headers=admin),
    ):
        assert response.status_code == 422
        assert "job_id" in response.json()["errors"][0]


async def test_admins_retry_and_discard_dead_jobs(
    client: httpx.AsyncClient, database: Database
) -> None:
    _, admin = await _key(database, Scope.admin)
    _, reader = await _key(database, Scope.read)
    dead = await _job(database, state="dead")
    assert (await client.post(f"/api/v1/jobs/{dead}/retry", headers=reader)).status_code == 403

    retried = await client.post(f"/api/v1/jobs/{dead}/retry", headers=admin)
    assert retried.status_code == 200
    assert (retried.json()["state"], retried.json()["attempts"]) == ("queued", 0)
    again = await client.post(f"/api/v1/jobs/{dead}/retry", headers=admin)
    assert again.status_code == 409

    discarded = await client.post(f"/api/v1/jobs/{dead}/discard", headers=admin)
    assert discarded.json()["state"] == "discarded"
    assert (await job(database, dead)).finished_at is not None


async def test_metrics_show_jobs_per_queue_and_state(
    client: httpx.AsyncClient, database: Database
) -> None:
    await _job(database)
    await _job(database, state="dead")
    await _job(database, state="succeeded")
    await JOB_STATS.refresh(database)
    text = (await client.get("/metrics")).text
    assert 'junction_jobs{queue="default",state="queued"} 1.0' in text
    assert 'junction_jobs{queue="default",state="dead"} 1.0' in text
    # Finished jobs pile up for days: the gauge leaves them to junction_job_runs_total.
    assert 'state="succeeded"' not in text
    assert 'junction_jobs_oldest_ready_age_seconds{queue="default"}' in text


@pytest.fixture
def cli_settings(job_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("JUNCTION_DATABASE_URL", job_settings.database_url)
    monkeypatch.setenv("JUNCTION_JOB_MODULES", "tests.support.jobs")
    get_settings.cache_clear()
    yield job_settings
    get_settings.cache_clear()


def test_the_cli_lists_retries_and_discards_jobs(cli_settings: Settings) -> None:
    async def prepare() -> tuple[int, int]:
        database = Database(cli_settings)
        try:
            return await _job(database, state="dead"), await _job(database)
        finally:
            await database.dispose()

    dead, queued = asyncio.run(prepare())
    runner = CliRunner()
    listed = runner.invoke(cli, ["jobs", "list", "--state", "dead"])
    assert listed.exit_code == 0, listed.output
    assert "tests.echo" in listed.output
    assert runner.invoke(cli, ["jobs", "retry", str(dead)]).exit_code == 0
    refused = runner.invoke(cli, ["jobs", "retry", str(queued)])
    assert refused.exit_code == 1
    assert "only dead or discarded" in refused.output
    assert runner.invoke(cli, ["jobs", "discard", str(queued)]).exit_code == 0
    assert runner.invoke(cli, ["jobs", "discard", "999999"]).exit_code == 1
    too_large = runner.invoke(cli, ["jobs", "retry", str(2**64)])
    assert too_large.exit_code == 1
    assert f"job {2**64} does not exist" in too_large.output
    assert runner.invoke(cli, ["jobs", "schedules"]).exit_code == 0
