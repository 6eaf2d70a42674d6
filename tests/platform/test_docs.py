"""/openapi.json and /docs, rendered by headless Chromium with the network closed."""

from __future__ import annotations

import httpx
import pytest

from tests.support.browser import LAUNCH_ARGS, require_browser
from tests.support.live import LiveServer


async def test_openapi_lists_the_routes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "Junction"
    assert {"/up", "/health", "/ready", "/metrics"} <= set(spec["paths"])


async def test_docs_page_uses_local_assets_only(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text
    assert 'src="/static/swagger/swagger-ui-bundle.js"' in page
    assert "cdn" not in page.lower()
    asset = await client.get("/static/swagger/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert len(asset.content) > 500_000


@pytest.mark.browser
def test_docs_render_in_a_real_browser_offline(live_server: LiveServer) -> None:
    chromium = require_browser()
    from playwright.sync_api import Route, sync_playwright

    blocked: list[str] = []

    def only_loopback(route: Route) -> None:
        if route.request.url.startswith(live_server.base_url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_loopback)
            page.goto(f"{live_server.base_url}/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=20_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            title = page.locator(".title").first.inner_text()
        finally:
            browser.close()
    assert {"/up", "/health", "/ready", "/metrics"} <= {p.strip() for p in paths}
    assert title.startswith("Junction")
    assert blocked == []
