"""Liveness, readiness and metrics endpoints.

``/up`` and ``/health`` answer 200 whenever the process serves HTTP. ``/ready`` answers
200 only once the database is reachable and migrated (and Redis answers, when
configured); otherwise 503 naming each failing check.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from junction.platform.errors import error_body
from junction.platform.metrics import metrics_endpoint

CHECK_TIMEOUT_SECONDS = 2.0

router = APIRouter(tags=["operations"])


@dataclass
class StartupState:
    """Set by the start-up task; readiness stays false until both are true."""

    database_reachable: bool = False
    migrated: bool = False


@router.get("/up", summary="200 while the process serves HTTP")
async def up() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health", summary="Liveness")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: database (and Redis when configured)",
    responses={503: {"description": "A dependency is down; the failing checks are named"}},
)
async def ready(request: Request) -> JSONResponse:
    checks = await _run_checks(request)
    failing = [f"{name}: {result}" for name, result in checks.items() if result != "ok"]
    if failing:
        return JSONResponse({**error_body(failing), "checks": checks}, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})


async def _run_checks(request: Request) -> dict[str, str]:
    state = request.app.state
    startup: StartupState = state.startup
    checks: dict[str, str] = {}
    checks["database"] = await _check(state.database.ping())
    if checks["database"] == "ok" and not startup.migrated:
        checks["database"] = "migrations not applied yet"
    if state.redis is not None:
        checks["redis"] = await _check(state.redis.ping())
    return checks


async def _check(probe: Any) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as exc:
        return f"unavailable ({type(exc).__name__}: {exc})"
    return "ok"


router.add_api_route(
    "/metrics",
    metrics_endpoint,
    methods=["GET"],
    summary="Prometheus metrics",
    include_in_schema=True,
)
