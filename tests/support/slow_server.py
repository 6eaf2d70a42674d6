"""`junction serve`'s server with one extra slow route, for the graceful-shutdown test."""

from __future__ import annotations

import asyncio
import sys

from fastapi import FastAPI

from junction.app import create_app
from junction.cli import run_server


def create_slow_app() -> FastAPI:
    app = create_app()

    @app.get("/test/slow")
    async def slow(seconds: float = 2.0) -> dict[str, float]:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    return app


if __name__ == "__main__":
    port = int(sys.argv[sys.argv.index("--port") + 1])
    run_server("tests.support.slow_server:create_slow_app", host="127.0.0.1", port=port)
