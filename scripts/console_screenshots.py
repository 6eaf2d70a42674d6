"""Screenshots of the console, light and dark, for docs/console.md and the README.

Runs `junction serve --demo` on a fresh SQLite database in a temporary folder (the demo's
emulators give the integrations real runs and the jobs page real jobs), creates an admin
key, lets the demo's first syncs finish, and captures each page with Debian's Chromium.
Writes docs/console/<page>-<light|dark>.png.

    scripts/console-screenshots
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "console"
PAGES = {"overview": "", "jobs": "/jobs", "job": "/jobs/1", "integrations": "/integrations"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def junction(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603  (this interpreter, fixed arguments)
        [sys.executable, "-m", "junction", *args], env=env, capture_output=True, check=True
    )
    return done.stdout.decode()


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s")


def capture(base: str, key: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is required (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        for scheme in ("light", "dark"):
            context = browser.new_context(
                color_scheme=scheme, viewport={"width": 1280, "height": 860}
            )
            page = context.new_page()
            page.goto(f"{base}/console/login")
            page.fill("#key", key)
            page.click("form[action='/console/login'] button[type=submit]")
            page.wait_for_url(f"{base}/console")
            for name, path in PAGES.items():
                page.goto(f"{base}/console{path}")
                page.wait_for_timeout(2500 if name == "overview" else 300)
                page.screenshot(path=OUT / f"{name}-{scheme}.png")
                print(f"docs/console/{name}-{scheme}.png")
            context.close()
        browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("JUNCTION_")},
            "JUNCTION_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/junction.db",
            "JUNCTION_STORAGE_PATH": f"{folder}/files",
        }
        junction(env, "migrate")
        key = junction(env, "keys", "create", "--scope", "admin", "--name", "ops")
        plain = key.strip().splitlines()[-1]
        port = free_port()
        server = subprocess.Popen(  # noqa: S603  (this interpreter, fixed arguments)
            [sys.executable, "-m", "junction", "serve", "--demo", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(f"{base}/ready")
            time.sleep(8)  # the demo's first syncs
            capture(base, plain)
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
