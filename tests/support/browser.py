"""The browser the browser tests drive: Debian's Chromium, when it is installed."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRE_BROWSER = os.environ.get("JUNCTION_TEST_REQUIRE_BROWSER") == "1"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def require_browser() -> str:
    """Chromium's path; skips the test without it, or fails when CI requires it."""
    if CHROMIUM is None:
        if REQUIRE_BROWSER:
            pytest.fail("chromium is required (JUNCTION_TEST_REQUIRE_BROWSER=1) but not found")
        pytest.skip("chromium is not installed")
    return CHROMIUM
