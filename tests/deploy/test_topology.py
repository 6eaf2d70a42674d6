"""The shipped topology as a whole, from the real image: two web, two worker and two
scheduler containers on the test's PostgreSQL and Redis, and nginx with the shipped
configuration in front. CI builds the image (scripts/build-image) and names it in
JUNCTION_TEST_IMAGE; every process runs with its default timings (leases, polls, the
events data version), as a deployment would.

One test, in phases, because starting the topology costs more than all its checks and the
schedulers must run for a minute anyway: the tick check spans the whole test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

import tests.support.jobs  # noqa: F401  (the test handlers, known to this process too)
from junction.emulators.airtable import DEFAULT_BASE_ID, DEFAULT_TOKEN, create_airtable_emulator
from junction.emulators.provider import create_app as create_provider_emulator
from junction.platform.auth import Scope, create_api_key
from junction.platform.db import Database
from junction.platform.jobs import enqueue
from junction.platform.jobs.models import Job, JobState
from junction.settings import Settings
from tests.deploy.topology_schedule import TICK_SECONDS, TOPOLOGY_TICK
from tests.support.containers import Container, Topology, image_or_skip, topology
from tests.support.live import free_port, serving_in_thread
from tests.support.realtime import cable_client
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = PROJECT_ROOT / "deploy" / "nginx" / "junction.conf"
MESSAGES = 300
RECORD_JOBS = 24
TICK_SPAN_SECONDS = 60
# The servers close a connection idle for 5 s (uvicorn's keep-alive timeout): a client that
# reuses one at that moment reads a reset. Idle connections are dropped here well before.
LIMITS = httpx.Limits(max_connections=200, keepalive_expiry=1.0)
# The topology's own limits are not under test here: 300 creates from one address.
GENEROUS_LIMITS = json.dumps({"default": "100000/minute", "write": "100000/minute"})
USER = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
        "date_of_birth": "1990-12-10"}  # fmt: skip


@dataclass
class Deployment:
    topology: Topology
    webs: list[Container]
    web_urls: list[str]
    workers: list[Container]
    schedulers: list[Container]
    proxy_url: str
    database: Database
    evidence: Path
    key: str


@pytest.fixture
def image(settings: Settings) -> str:
    if settings.is_sqlite or settings.redis_url is None:
        pytest.skip("needs JUNCTION_TEST_DATABASE_URL (PostgreSQL) and JUNCTION_TEST_REDIS_URL")
    return image_or_skip()


@pytest.fixture
def emulators() -> Iterator[tuple[str, str]]:
    with (
        serving_in_thread(create_provider_emulator(), "provider emulator") as provider,
        serving_in_thread(create_airtable_emulator(), "Airtable emulator") as airtable,
    ):
        yield provider, airtable


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    """Where the containers' record jobs leave their evidence (they run as uid 10001)."""
    directory = tmp_path / "evidence"
    directory.mkdir()
    directory.chmod(0o777)
    return directory


@pytest.fixture
def nginx_conf(tmp_path: Path) -> Callable[[list[int]], tuple[Path, int]]:
    """The shipped nginx configuration, its upstream pointed at the web containers."""

    def write(web_ports: list[int]) -> tuple[Path, int]:
        port = free_port()
        servers = "".join(f"server 127.0.0.1:{p};" for p in web_ports)
        site = (
            NGINX_CONF.read_text()
            .replace("server web:8000;", servers)
            .replace("listen 80;", f"listen 127.0.0.1:{port};")
            .replace("/var/cache/nginx/junction", str(tmp_path / "nginx-cache"))
        )
        (tmp_path / "site.conf").write_text(site)
        main = tmp_path / "nginx.conf"
        # Started as root, nginx's workers would run as nobody, who cannot enter tmp_path.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        main.write_text(
            f"{user}pid {tmp_path}/nginx.pid; error_log {tmp_path}/nginx-error.log;\n"
            "events {}\n"
            f"http {{ access_log off; client_body_temp_path {tmp_path}/body; "
            f"proxy_temp_path {tmp_path}/proxy; include {tmp_path}/site.conf; }}\n"
        )
        return main, port

    return write


@pytest.fixture
def nginx_binary() -> str:
    for candidate in ("/usr/sbin/nginx", "/usr/bin/nginx"):
        if os.path.exists(candidate):
            return candidate
    if os.environ.get("JUNCTION_TEST_REQUIRE_IMAGE") == "1":
        pytest.fail("nginx is required for the topology test")
    pytest.skip("needs nginx")


async def test_the_shipped_topology_works_as_a_whole(
    image: str,
    settings: Settings,
    emulators: tuple[str, str],
    evidence: Path,
    nginx_conf: Callable[[list[int]], tuple[Path, int]],
    nginx_binary: str,
) -> None:
    provider_url, airtable_url = emulators
    database = Database(settings)
    async with database.transaction() as session:
        _, key = await create_api_key(session, "topology", [Scope.read, Scope.write, Scope.sync])
    assert settings.redis_url is not None
    environment = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url.get_secret_value(),
        "JUNCTION_ENV": "production",
        "JUNCTION_SECRET_KEY": secrets.token_hex(32),
        "JUNCTION_MIGRATE_ON_START": "false",
        "JUNCTION_LOG_FORMAT": "json",
        "JUNCTION_RATE_LIMITS": GENEROUS_LIMITS,
        "JUNCTION_JOB_MODULES": "tests.support.jobs,tests.deploy.topology_schedule",
        "PYTHONPATH": "/srv",
        "JUNCTION_PROVIDER_URL": f"{provider_url}/api/events?mode=fixed&response=1",
        "AIRTABLE_API_KEY": DEFAULT_TOKEN,
        "AIRTABLE_BASE_ID": DEFAULT_BASE_ID,
        "JUNCTION_AIRTABLE_ENDPOINT_URL": airtable_url,
    }
    mounts = [f"{PROJECT_ROOT / 'tests'}:/srv/tests:ro", f"{evidence}:/srv/evidence"]
    web_ports = [free_port(), free_port()]
    conf, proxy_port = nginx_conf(web_ports)
    with topology(image, environment, mounts) as running:
        proxy = subprocess.Popen([nginx_binary, "-c", str(conf), "-g", "daemon off;"])
        try:
            deployment = Deployment(
                topology=running,
                webs=[
                    running.start(
                        "web", "serve", "--port", str(port), JUNCTION_RUN_EMBEDDED_WORKER="false"
                    )
                    for port in web_ports
                ],
                web_urls=[f"http://127.0.0.1:{port}" for port in web_ports],
                workers=[],
                schedulers=[running.start("scheduler", "scheduler") for _ in range(2)],
                proxy_url=f"http://127.0.0.1:{proxy_port}",
                database=database,
                evidence=evidence,
                key=key,
            )
            await _run_phases(deployment)
        except BaseException:
            print(running.logs())
            raise
        finally:
            proxy.send_signal(signal.SIGQUIT)
            proxy.wait(10)
            await database.dispose()


async def _run_phases(deployment: Deployment) -> None:
    await _all_ready(deployment)
    user_id, clients = await _before_the_workers(deployment)
    async with clients[0] as first, clients[1] as second:
        for client in (first, second):
            assert (await client.next_frame())["type"] == "welcome"
            subscribed = await client.subscribe(json.dumps({"channel": "UserUpdatesChannel"}))
            assert subscribed["type"] == "confirm_subscription"
        deployment.workers.extend(
            deployment.topology.start("worker", "worker", "--concurrency", "5") for _ in range(2)
        )
        for client in (first, second):  # the broadcast caused in a worker reaches both webs
            await _sync_status_update(client, user_id)
    await _caches_follow_the_workers_sync(deployment, user_id)
    await _messages_are_numbered_once_across_both_webs(deployment)
    await _every_job_runs_once_in_effect_though_a_worker_is_killed(deployment)
    await _the_proxy_caches_public_answers(deployment)
    await _each_tick_fires_once(deployment)
    await _sigterm_ends_every_container_cleanly(deployment)


async def _all_ready(deployment: Deployment) -> None:
    async with httpx.AsyncClient(timeout=5, limits=LIMITS) as client:
        for url in deployment.web_urls:

            async def ready(url: str = url) -> bool:
                try:
                    return (await client.get(f"{url}/ready")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=120, what=f"{url}/ready")


async def _before_the_workers(deployment: Deployment) -> tuple[str, list[Any]]:
    """A user and an events sync, queued while no worker runs; both webs cache the answers
    from before (the user unsynced, no events)."""
    headers = {"Authorization": f"Bearer {deployment.key}"}
    async with httpx.AsyncClient(headers=headers, timeout=30, limits=LIMITS) as client:
        created = await client.post(f"{deployment.web_urls[0]}/api/v1/users", json=USER)
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        trigger = await client.post(f"{deployment.web_urls[1]}/api/v1/events/sync")
        assert trigger.status_code == 202, trigger.text
        for url in deployment.web_urls:
            user = await client.get(f"{url}/api/v1/users/{user_id}")
            assert user.json()["synced_at"] is None
            assert (await _events(client, url)) == []
    cable_urls = [url.replace("http://", "ws://") + "/cable" for url in deployment.web_urls]
    return user_id, [cable_client(url) for url in cable_urls]


async def _events(client: httpx.AsyncClient, url: str) -> list[Any]:
    params = {"starts_at": "2021-01-01T00:00:00Z", "ends_at": "2021-12-31T23:59:59Z"}
    response = await client.get(f"{url}/api/v1/events", params=params)
    assert response.status_code == 200, response.text
    events: list[Any] = response.json()["data"]
    return events


async def _sync_status_update(client: Any, user_id: str) -> None:
    async with asyncio.timeout(60):
        while True:
            frame = await client.next_frame(timeout=60)
            message = frame.get("message") or {}
            if message.get("type") == "sync_status_update" and message["user"]["id"] == user_id:
                assert message["user"]["synced_at"] is not None
                return


async def _caches_follow_the_workers_sync(deployment: Deployment, user_id: str) -> None:
    headers = {"Authorization": f"Bearer {deployment.key}"}
    async with httpx.AsyncClient(headers=headers, timeout=30, limits=LIMITS) as client:
        for url in deployment.web_urls:

            async def synced(url: str = url) -> bool:
                user = (await client.get(f"{url}/api/v1/users/{user_id}")).json()
                return user["synced_at"] is not None and user["sync"]["status"] == "synced"

            async def events_listed(url: str = url) -> bool:
                return len(await _events(client, url)) > 0

            await eventually(synced, timeout=60, what=f"the synced user on {url}")
            await eventually(events_listed, timeout=60, what=f"the synced events on {url}")


async def _messages_are_numbered_once_across_both_webs(deployment: Deployment) -> None:
    first, second = deployment.web_urls
    async with httpx.AsyncClient(timeout=60, limits=LIMITS) as client:
        app = await client.post(f"{first}/applications", json={"application": {"name": "t"}})
        token = app.json()["token"]
        chat = (await client.post(f"{second}/applications/{token}/chats")).json()["number"]
        path = f"/applications/{token}/chats/{chat}/messages"
        responses = await asyncio.gather(
            *(
                client.post(
                    f"{deployment.web_urls[i % 2]}{path}",
                    json={"message": {"body": f"topology message w{i}zz"}},
                )
                for i in range(MESSAGES)
            )
        )
        assert {r.status_code for r in responses} == {202}
        numbers = {r.json()["number"]: i for i, r in enumerate(responses)}
        assert sorted(numbers) == list(range(1, MESSAGES + 1))

        stored = await client.get(f"{second}{path}", params={"per_page": 1000})
        assert [m["number"] for m in stored.json()] == list(range(1, MESSAGES + 1))
        for batch in range(0, MESSAGES, 50):
            found = await asyncio.gather(
                *(
                    client.get(f"{deployment.web_urls[n % 2]}{path}/search",
                               params={"q": f"w{numbers[n]}zz"})
                    for n in range(batch + 1, batch + 51)
                )
            )  # fmt: skip
            assert [[m["number"] for m in r.json()] for r in found] == [
                [n] for n in range(batch + 1, batch + 51)
            ]


async def _every_job_runs_once_in_effect_though_a_worker_is_killed(
    deployment: Deployment,
) -> None:
    async with deployment.database.transaction() as session:
        ids = [
            (await enqueue(session, "tests.record", {"dir": "/srv/evidence", "sleep": 1.0})).id
            for _ in range(RECORD_JOBS)
        ]
    victim = deployment.workers[0]

    async def victim_is_running_a_job() -> list[int]:
        jobs = await _jobs(deployment.database, ids)
        return [
            j.id
            for j in jobs
            if j.state == "running" and (j.locked_by or "").startswith(f"{victim.name}:")
        ]

    interrupted = await eventually(
        victim_is_running_a_job, timeout=60, what="a job running on the victim"
    )
    victim.kill()
    deployment.workers.remove(victim)

    async def all_succeeded() -> list[Job] | None:
        jobs = await _jobs(deployment.database, ids)
        return jobs if all(j.state == JobState.succeeded.value for j in jobs) else None

    # The default lease (30 s) has to run out before the killed worker's jobs run again.
    jobs = await eventually(all_succeeded, timeout=180, what="every record job to succeed")
    assert not (deployment.evidence / "violations").exists()
    for job in jobs:
        assert (deployment.evidence / f"{job.id}.done").read_text().count("\n") >= 1
    rerun = {job.id: job for job in jobs}
    for job_id in interrupted:
        assert rerun[job_id].attempts >= 2
        assert rerun[job_id].errors[0]["type"] == "LeaseExpired"


async def _jobs(database: Database, ids: list[int]) -> list[Job]:
    async with database.reading() as session:
        return list((await session.scalars(select(Job).where(Job.id.in_(ids)))).all())


async def _the_proxy_caches_public_answers(deployment: Deployment) -> None:
    params = {"starts_at": "2021-01-01T00:00:00Z", "ends_at": "2021-12-31T23:59:59Z"}
    headers = {"Authorization": f"Bearer {deployment.key}"}
    async with httpx.AsyncClient(
        base_url=deployment.proxy_url, timeout=30, limits=LIMITS
    ) as client:
        first = await client.get("/api/v1/events", params=params)
        second = await client.get("/api/v1/events", params=params)
        with_key = await client.get("/api/v1/users", headers=headers)
        again_with_key = await client.get("/api/v1/users", headers=headers)
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-proxy-cache"], second.headers["x-proxy-cache"]) == ("MISS", "HIT")
    assert second.content == first.content
    assert with_key.status_code == again_with_key.status_code == 200
    assert again_with_key.headers["x-proxy-cache"] == "BYPASS"


async def _each_tick_fires_once(deployment: Deployment) -> None:
    async def ticks() -> list[Any]:
        async with deployment.database.reading() as session:
            rows = await session.scalars(
                select(Job.run_at).where(Job.name == "tests.noop").order_by(Job.run_at)
            )
            fired = list(rows.all())
        span = (fired[-1] - fired[0]).total_seconds() if fired else 0
        return fired if span >= TICK_SPAN_SECONDS else []

    fired = await eventually(ticks, timeout=120, what=f"{TICK_SPAN_SECONDS} s of {TOPOLOGY_TICK}")
    assert [tick for tick, n in Counter(fired).items() if n > 1] == []
    gaps = [later - earlier for earlier, later in itertools.pairwise(fired)]
    assert min(gaps) >= timedelta(seconds=TICK_SECONDS)  # no tick fired twice
    assert max(gaps) < timedelta(seconds=3 * TICK_SECONDS)  # none skipped


async def _sigterm_ends_every_container_cleanly(deployment: Deployment) -> None:
    async with deployment.database.transaction() as session:
        ids = [
            (await enqueue(session, "tests.record", {"dir": "/srv/evidence", "sleep": 2.0})).id
            for _ in range(4)
        ]

    async def running() -> bool:
        return any(j.state == "running" for j in await _jobs(deployment.database, ids))

    await eventually(running, timeout=60, what="a job running when SIGTERM comes")
    containers = [*deployment.webs, *deployment.workers, *deployment.schedulers]
    codes = await asyncio.gather(*(asyncio.to_thread(c.stop) for c in containers))
    assert dict(zip([c.name for c in containers], codes, strict=True)) == {
        c.name: 0 for c in containers
    }
    jobs = await _jobs(deployment.database, ids)
    # Finished within the grace period, or handed back to the queue: never lost.
    assert {j.state for j in jobs} <= {JobState.succeeded.value, JobState.queued.value}
    assert all(j.locked_by is None for j in jobs if j.state == JobState.queued.value)
