"""The console in a real browser (Debian's Chromium, driven by Playwright) against a real
`junction serve` with its embedded worker and scheduler: what an operator does, end to end,
with no browser console error and every page passing axe-core in light and dark."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright
from sqlalchemy import func, select, update
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from junction.platform.auth import Scope
from junction.platform.db import Database
from junction.platform.jobs import enqueue
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs.models import Job, JobState
from junction.settings import Settings
from junction.wellness.models import Client
from tests.support import jobs as _test_jobs  # noqa: F401  (registers tests.noop)
from tests.support.browser import LAUNCH_ARGS, require_browser
from tests.support.console import api_key, wellness_client, wellness_dead_letter
from tests.support.live import LiveServer, serving_in_thread, start_live_server
from tests.support.queue import job
from tests.support.schedules import TICK_SCHEDULE
from tests.support.waiting import eventually

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
PAGES = ["", "/jobs", "/queues", "/schedules", "/integrations", "/channels", "/audit"]


@pytest.fixture
def console_server(settings: Settings) -> Iterator[LiveServer]:
    require_browser()
    with start_live_server(settings, JUNCTION_JOB_MODULES="tests.support.jobs") as server:
        yield server


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=require_browser(), args=LAUNCH_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


class Operator:
    """A logged-in browser tab that remembers every console error it saw."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    async def go(self, path: str) -> None:
        await self.page.goto(f"{self.base_url}/console{path}")

    async def notice(self) -> str:
        return await self.page.locator(".notice").first.inner_text()


@asynccontextmanager
async def operator(
    browser: Browser, server: LiveServer, key: str, scheme: str = "light"
) -> AsyncIterator[Operator]:
    context = await browser.new_context(color_scheme=scheme)  # type: ignore[arg-type]
    page = await context.new_page()
    tab = Operator(page, server.base_url)
    await tab.go("")
    assert page.url.startswith(f"{server.base_url}/console/login")
    await page.fill("#key", key)
    await page.click("form[action='/console/login'] button[type=submit]")
    await page.wait_for_url(f"{server.base_url}/console")
    try:
        yield tab
        assert tab.errors == []
    finally:
        await context.close()


async def dead_jobs(database: Database, count: int, **payload: object) -> list[int]:
    async with database.transaction() as session:
        ids = []
        for n in range(count):
            ids.append((await enqueue(session, "tests.noop", {"n": n, **payload})).id)
        await session.execute(update(Job).where(Job.id.in_(ids)).values(state=JobState.dead.value))
    return ids


async def set_paused(database: Database, queue: str, paused: bool) -> None:
    async with database.transaction() as session:
        await job_queue.set_paused(session, queue, paused)


async def test_every_page_passes_axe_in_light_and_dark_without_console_errors(
    console_server: LiveServer, database: Database
) -> None:
    if not AXE.exists():
        pytest.skip("run `npm ci` for axe-core")
    key = await api_key(database, Scope.admin)
    await dead_jobs(database, 3)
    async with chromium() as browser:
        for scheme in ("light", "dark"):
            async with operator(browser, console_server, key, scheme) as tab:
                for path in [*PAGES, "/jobs/1"]:
                    await tab.go(path)
                    await tab.page.add_script_tag(path=str(AXE))
                    result = await tab.page.evaluate("async () => (await axe.run()).violations")
                    summary = [(v["id"], v["impact"], len(v["nodes"])) for v in result]
                    assert summary == [], f"{scheme} {path}: {json.dumps(result)[:2000]}"


async def test_the_overview_updates_live_while_jobs_wait_and_run(
    console_server: LiveServer, database: Database
) -> None:
    key = await api_key(database, Scope.admin)
    await set_paused(database, "default", True)
    async with chromium() as browser, operator(browser, console_server, key) as tab:
        ready = tab.page.locator("#ready-jobs")
        assert await ready.inner_text() == "0"
        async with database.transaction() as session:
            for n in range(3):
                await enqueue(session, "tests.noop", {"n": n})
        await tab.page.wait_for_function(
            "document.getElementById('ready-jobs').textContent === '3'", timeout=15_000
        )
        await set_paused(database, "default", False)
        await tab.page.wait_for_function(
            "document.getElementById('ready-jobs').textContent === '0'", timeout=15_000
        )
        rate = await tab.page.locator("#request-rate").inner_text()
        assert rate.endswith("/s")


async def test_filter_jobs_by_payload(console_server: LiveServer, database: Database) -> None:
    key = await api_key(database, Scope.admin)
    await dead_jobs(database, 6, user_id=7)
    await dead_jobs(database, 4, user_id=8)
    async with chromium() as browser, operator(browser, console_server, key) as tab:
        await tab.go("/jobs")
        await tab.page.keyboard.press("/")
        await tab.page.keyboard.type("user_id=7")
        await tab.page.keyboard.press("Enter")
        await tab.page.wait_for_url("**payload=user_id*")
        rows = tab.page.locator("table.jobs tbody tr")
        assert await rows.count() == 6
        assert "user_id" in await rows.first.inner_text()


async def test_retry_a_dead_job_and_see_it_succeed(
    console_server: LiveServer, database: Database
) -> None:
    key = await api_key(database, Scope.admin)
    [dead] = await dead_jobs(database, 1)
    async with chromium() as browser, operator(browser, console_server, key) as tab:
        await tab.go(f"/jobs/{dead}")
        await tab.page.click("button:text('Retry')")
        assert await tab.notice() == f"job {dead} is now queued"
        await eventually(
            lambda: _state_is(database, dead, JobState.succeeded), what="the retried job running"
        )
        await tab.page.reload()
        assert await tab.page.locator("h1 .state").inner_text() == "succeeded"


async def _state_is(database: Database, job_id: int, state: JobState) -> bool:
    return (await job(database, job_id)).state == state.value


async def test_bulk_discard_of_1000_dead_jobs_shows_its_progress(
    console_server: LiveServer, database: Database
) -> None:
    key = await api_key(database, Scope.admin)
    await dead_jobs(database, 1000, batch="nightly")
    async with chromium() as browser, operator(browser, console_server, key) as tab:
        await tab.go("/jobs?state=dead&payload=batch%3Dnightly")
        await tab.page.click("button:text('Discard all')")
        await tab.page.wait_for_url("**/console/audit/*")
        assert "discard of 1000 jobs started" in await tab.notice()
        await tab.page.wait_for_function(
            "document.getElementById('progress-result').textContent === 'ok'", timeout=60_000
        )
        assert await tab.page.locator("#progress-text").inner_text() == "1000 of 1000"
        assert await tab.page.locator("#progress-bar").get_attribute("value") == "1000"
    async with database.reading() as session:
        discarded = await session.scalar(
            select(func.count()).select_from(Job).where(Job.state == JobState.discarded.value)
        )
    assert discarded == 1000


async def test_pause_a_queue_and_a_new_job_waits_until_resumed(
    console_server: LiveServer, database: Database
) -> None:
    key = await api_key(database, Scope.admin)
    async with chromium() as browser, operator(browser, console_server, key) as tab:
        await tab.go("/queues")
        await tab.page.click("button:text('Pause default')")
        assert await tab.notice() == "queue default paused"
        async with database.transaction() as session:
            waiting = (await enqueue(session, "tests.noop", None)).id
        await asyncio.sleep(3)  # three polls of the worker, at the default interval
        assert await _state_is(database, waiting, JobState.queued)
        await tab.page.click("button:text('Resume default')")
        assert await tab.notice() == "queue default resumed"
        await eventually(
            lambda: _state_is(database, waiting, JobState.succeeded), what="the job after resume"
        )


async def test_disable_a_schedule_and_see_no_tick(settings: Settings, database: Database) -> None:
    require_browser()
    key = await api_key(database, Scope.admin)
    modules = "tests.support.jobs,tests.support.schedules"
    with start_live_server(settings, JUNCTION_JOB_MODULES=modules) as server:
        async with chromium() as browser, operator(browser, server, key) as tab:
            await eventually(lambda: _ticks(database), what="the schedule's first ticks")
            await tab.go("/schedules")
            row = f"[id='schedule-{TICK_SCHEDULE}']"
            await tab.page.click(f"{row} button:text('Disable')")
            assert await tab.notice() == f"schedule {TICK_SCHEDULE} disabled"
            await asyncio.sleep(0.5)  # a tick under way when it was disabled may still land
            before = await _ticks(database)
            await asyncio.sleep(2)  # the schedule fires every 0.3 s when enabled
            assert await _ticks(database) == before
            await tab.page.click(f"{row} button:text('Enable')")
            await eventually(
                lambda: _more_ticks(database, before), what="ticks after enabling again"
            )


async def _ticks(database: Database) -> int:
    async with database.reading() as session:
        count = await session.scalar(
            select(func.count()).select_from(Job).where(Job.name == "tests.noop")
        )
    return int(count or 0)


async def _more_ticks(database: Database, than: int) -> bool:
    return await _ticks(database) > than


async def test_replay_a_dead_letter(console_server: LiveServer, database: Database) -> None:
    key = await api_key(database, Scope.admin)
    letter_id = await wellness_dead_letter(database, "c-9", wellness_client("c-9", "Grace"))
    async with chromium() as browser, operator(browser, console_server, key) as tab:
        await tab.go("/integrations")
        await tab.page.click(f"#letter-{letter_id} summary")
        await tab.page.click(f"button:text('Replay #{letter_id}')")
        assert "replay job" in await tab.notice()

        async def replayed() -> bool:
            async with database.reading() as session:
                stored = await session.scalar(select(Client).where(Client.external_id == "c-9"))
            return stored is not None

        await eventually(replayed, what="the replayed client stored")
        await tab.go("/integrations")
        assert await tab.page.locator(f"#letter-{letter_id}").count() == 0


async def test_a_read_only_key_sees_no_action_and_its_forged_post_is_refused(
    console_server: LiveServer, database: Database
) -> None:
    key = await api_key(database, Scope.read)
    [dead] = await dead_jobs(database, 1)
    async with chromium() as browser, operator(browser, console_server, key) as tab:
        for path in ("/jobs", f"/jobs/{dead}", "/queues", "/schedules", "/integrations"):
            await tab.go(path)
            assert await tab.page.locator("main form[method='post']").count() == 0, path
        status = await tab.page.evaluate(
            """async (id) => {
                const token = document.querySelector('meta[name=csrf-token]').content;
                const body = new FormData();
                body.append('csrf', token);
                const answer = await fetch(`/console/jobs/${id}/retry`, {method: 'POST', body});
                return answer.status;
            }""",
            dead,
        )
        assert status == 403
        tab.errors.remove(
            "Failed to load resource: the server responded with a status of 403 (Forbidden)"
        )
    assert await _state_is(database, dead, JobState.dead)


def _attacker(target: str) -> Starlette:
    page = f"""<!doctype html><html lang="en"><title>elsewhere</title><body>
    <form id="f" method="post" action="{target}" enctype="multipart/form-data">
    <input name="csrf" value="guess"></form>
    <script>document.getElementById('f').submit()</script></body></html>"""

    async def home(request: object) -> HTMLResponse:
        return HTMLResponse(page)

    return Starlette(routes=[Route("/", home)])


async def test_a_cross_site_post_is_refused(console_server: LiveServer, database: Database) -> None:
    key = await api_key(database, Scope.admin)
    [dead] = await dead_jobs(database, 1)
    target = f"{console_server.base_url}/console/jobs/{dead}/retry"
    with serving_in_thread(_attacker(target), "attacker page") as elsewhere:
        async with chromium() as browser, operator(browser, console_server, key) as tab:
            answers: list[int] = []
            tab.page.on("response", lambda r: answers.append(r.status) if r.url == target else None)
            await tab.page.goto(elsewhere.replace("127.0.0.1", "localhost"))
            await tab.page.wait_for_load_state("networkidle")
            tab.errors.clear()  # the refusal itself is logged by the browser as a failed load
    assert answers
    assert all(status in (401, 403) for status in answers), answers
    assert await _state_is(database, dead, JobState.dead)


async def test_keyboard_shortcuts_and_a_phone_sized_screen(
    console_server: LiveServer, database: Database
) -> None:
    key = await api_key(database, Scope.admin)
    await dead_jobs(database, 3)
    async with chromium() as browser, operator(browser, console_server, key) as tab:
        await tab.page.set_viewport_size({"width": 390, "height": 844})
        await tab.page.keyboard.press("?")
        assert await tab.page.locator("#shortcuts").is_visible()
        await tab.page.keyboard.press("Escape")
        assert not await tab.page.locator("#shortcuts").is_visible()
        await tab.page.keyboard.press("g")
        await tab.page.keyboard.press("j")
        await tab.page.wait_for_url("**/console/jobs")
        await tab.page.keyboard.press("t")
        assert await tab.page.evaluate("document.documentElement.dataset.theme") == "dark"
        for path in [*PAGES, "/jobs/1"]:
            await tab.go(path)
            overflow = await tab.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{path} is wider than a phone's screen by {overflow} px"
