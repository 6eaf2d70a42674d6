"""The console's pages and actions, under ``/console``, rendered on the server.

Pages answer HTML (Jinja templates); the overview refreshes itself over server-sent
events; every action is a form POST that answers with a redirect back to its page and a
notice (post/redirect/get), so reloading a page never repeats an action. None of it is in
the OpenAPI document: it is an operator's tool, not an API.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sse_starlette import EventSourceResponse

from junction.console import overview, repository, service
from junction.console.repository import JobFilter
from junction.console.session import (
    COOKIE,
    CSRF_FIELD,
    LOGIN_PATH,
    ActionRefused,
    Actor,
    LoginRequired,
    Operator,
    Viewer,
    cookie_options,
    current_operator,
    log_in,
    same_origin,
)
from junction.platform.db import DbSession, ReadSession, database_of, utcnow
from junction.platform.errors import JunctionError, ValidationFailed
from junction.platform.integrations import catalog
from junction.platform.jobs import repository as jobs_repository
from junction.platform.jobs.models import JobState
from junction.platform.jobs.registry import registry
from junction.platform.jobs.worker import parse_queues
from junction.platform.realtime.metrics import CLIENTS_DROPPED, CONNECTIONS, SUBSCRIPTIONS
from junction.settings import Settings

HERE = Path(__file__).parent
PAGE_SIZE = 50
OVERVIEW_REFRESH_SECONDS = 2.0
MAX_FILTER_LENGTH = 2000

templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/console", include_in_schema=False)


def _render(
    request: Request, name: str, operator: Operator | None, status: int = 200, **context: Any
) -> HTMLResponse:
    context = {
        "operator": operator,
        "csrf_field": CSRF_FIELD,
        "notice": request.query_params.get("notice", "")[:500],
        "notice_level": "error" if request.query_params.get("level") == "error" else "ok",
        "json": _pretty,
        "ago": _ago,
        "duration": _duration,
        **context,
    }
    return templates.TemplateResponse(request, name, context, status_code=status)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = (utcnow() - moment).total_seconds()
    return f"in {_duration(-seconds)}" if seconds < 0 else f"{_duration(seconds)} ago"


def _back(path: str, notice: str, *, error: bool = False) -> RedirectResponse:
    query = {"notice": notice, **({"level": "error"} if error else {})}
    separator = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{separator}{urlencode(query)}", status_code=303)


async def _acted(path: str, act: Awaitable[str]) -> RedirectResponse:
    """Back to ``path`` with what the action did, or why it was refused."""
    try:
        notice = await act
    except JunctionError as exc:
        return _back(path, "; ".join(exc.messages), error=True)
    return _back(path, notice)


def _known_queues(settings: Settings) -> list[str]:
    return [slots.name for slots in parse_queues(settings.job_queues, settings.job_concurrency)]


# --- login -----------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request, next: str = "/console") -> HTMLResponse:
    return _render(request, "login.html", None, next=_local(next))


def _local(path: str) -> str:
    """Only a path of the console itself: a login link must not send anyone elsewhere."""
    return path if path.startswith("/console") and "//" not in path else "/console"


@router.post("/login")
async def login(
    request: Request,
    key: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "/console",
) -> Response:
    if not same_origin(request):
        return _render(
            request, "login.html", None, 403, next="/console", error="Cross-site login refused."
        )
    signed_in = await log_in(request, key) if key else None
    if signed_in is None:
        error = "That key is unknown, revoked, or lacks the read scope."
        return _render(request, "login.html", None, 401, next=_local(next), error=error)
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(COOKIE, signed_in[1], **cookie_options(request))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    if same_origin(request):
        response.delete_cookie(COOKIE, path="/console")
    return response


# --- overview --------------------------------------------------------------------------


@router.get("")
async def overview_page(request: Request, operator: Viewer) -> HTMLResponse:
    figures = await overview.gather(request.app, _known_queues(request.app.state.settings))
    return _render(request, "overview.html", operator, page="overview", o=figures)


@router.get("/overview/stream")
async def overview_stream(request: Request, _operator: Viewer) -> EventSourceResponse:
    app = request.app
    known = _known_queues(app.state.settings)

    async def updates() -> AsyncIterator[dict[str, str]]:
        previous: overview.RequestSample | None = None
        while True:
            sample = overview.RequestSample.now()
            figures = await overview.gather(app, known)
            figures.request_rates = sample.rates_since(previous)
            previous = sample
            body = templates.get_template("_overview.html").render(
                o=figures, duration=_duration, ago=_ago
            )
            yield {"event": "overview", "data": body}
            await asyncio.sleep(OVERVIEW_REFRESH_SECONDS)

    return EventSourceResponse(updates(), ping=15)


# --- jobs ------------------------------------------------------------------------------


def _job_filter(
    state: str | None,
    queue: str | None,
    name: str | None,
    since: str | None,
    until: str | None,
    payload: str | None,
) -> JobFilter:
    if state and state not in {s.value for s in JobState}:
        raise ValidationFailed(f"unknown state {state!r}")
    for value in (queue, name, payload):
        if value and len(value) > MAX_FILTER_LENGTH:
            raise ValidationFailed("a filter is too long")
    return JobFilter(
        state=state or None,
        queue=queue or None,
        name=name or None,
        since=_moment(since),
        until=_moment(until),
        payload=service.payload_filter(payload or ""),
    )


def _moment(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"{value!r} is not a date and time (2026-12-03T10:00)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


FilterText = Annotated[str | None, Query(max_length=MAX_FILTER_LENGTH)]


@router.get("/jobs")
async def jobs_page(
    request: Request,
    operator: Viewer,
    session: ReadSession,
    state: FilterText = None,
    queue: FilterText = None,
    name: FilterText = None,
    since: FilterText = None,
    until: FilterText = None,
    payload: FilterText = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> HTMLResponse:
    raw = {
        "state": state,
        "queue": queue,
        "name": name,
        "since": since,
        "until": until,
        "payload": payload,
    }
    try:
        wanted = _job_filter(state, queue, name, since, until, payload)
    except JunctionError as exc:
        return _render(
            request,
            "jobs.html",
            operator,
            422,
            page="jobs",
            jobs=[],
            raw=raw,
            error="; ".join(exc.messages),
            names=[],
            next_page=None,
            states=list(JobState),
        )
    jobs = await repository.jobs_page(session, wanted, PAGE_SIZE + 1, before)
    more = len(jobs) > PAGE_SIZE
    jobs = jobs[:PAGE_SIZE]
    next_query = {k: v for k, v in raw.items() if v}
    next_page = (
        f"/console/jobs?{urlencode({**next_query, 'before': jobs[-1].id})}" if more else None
    )
    return _render(
        request,
        "jobs.html",
        operator,
        page="jobs",
        jobs=jobs,
        raw=raw,
        error=None,
        names=sorted(registry.jobs),
        next_page=next_page,
        states=list(JobState),
    )


@router.get("/jobs/{job_id}")
async def job_page(
    request: Request, operator: Viewer, session: ReadSession, job_id: int
) -> HTMLResponse:
    job = await jobs_repository.job_by_id(session, job_id) if 1 <= job_id < 2**63 else None
    if job is None:
        return _render(request, "missing.html", operator, 404, page="jobs", what=f"Job {job_id}")
    settings: Settings = request.app.state.settings
    keys = frozenset(key.lower() for key in settings.console_masked_keys)
    holder = None
    if job.unique_key:
        holder = await repository.job_holding(session, job.unique_key, other_than=job.id)
    return _render(
        request,
        "job.html",
        operator,
        page="jobs",
        job=job,
        payload=service.masked(job.payload, keys),
        result=service.masked(job.result, keys),
        holder=holder,
    )


@router.post("/jobs/bulk")
async def bulk_action(
    request: Request,
    operator: Actor,
    session: DbSession,
    action: Annotated[str, Form(max_length=20)],
    state: Annotated[str, Form(max_length=MAX_FILTER_LENGTH)] = "",
    queue: Annotated[str, Form(max_length=MAX_FILTER_LENGTH)] = "",
    name: Annotated[str, Form(max_length=MAX_FILTER_LENGTH)] = "",
    since: Annotated[str, Form(max_length=MAX_FILTER_LENGTH)] = "",
    until: Annotated[str, Form(max_length=MAX_FILTER_LENGTH)] = "",
    payload: Annotated[str, Form(max_length=MAX_FILTER_LENGTH)] = "",
) -> Response:
    try:
        wanted = _job_filter(state, queue, name, since, until, payload)
        entry = await service.start_bulk(session, operator, action, wanted)
    except JunctionError as exc:
        return _back("/console/jobs", "; ".join(exc.messages), error=True)
    return _back(f"/console/audit/{entry.id}", f"{action} of {entry.total} jobs started")


@router.post("/jobs/{job_id}/{action}")
async def job_action(
    request: Request, operator: Actor, session: DbSession, job_id: int, action: str
) -> Response:
    act = service.act_on_job(session, operator, action, job_id)
    return await _acted(f"/console/jobs/{job_id}", act)


# --- queues and schedules ------------------------------------------------------------


@router.get("/queues")
async def queues_page(request: Request, operator: Viewer, session: ReadSession) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    slots = {
        s.name: s.concurrency for s in parse_queues(settings.job_queues, settings.job_concurrency)
    }
    queues = await repository.queue_figures(session, list(slots))
    since = utcnow() - timedelta(hours=1)
    minutes = await jobs_repository.minutes_since(session, since)
    hourly: dict[str, int] = {}
    for row in minutes:
        hourly[row.queue] = hourly.get(row.queue, 0) + row.succeeded + row.dead
    workers = await repository.workers_running_jobs(session)
    return _render(
        request,
        "queues.html",
        operator,
        page="queues",
        queues=queues,
        slots=slots,
        hourly=hourly,
        workers=workers,
    )


@router.post("/queues/{queue}/{action}")
async def queue_action(
    request: Request, operator: Actor, session: DbSession, queue: str, action: str
) -> Response:
    if action not in ("pause", "resume") or not 0 < len(queue) <= 100:
        return _back("/console/queues", "unknown queue action", error=True)
    notice = await service.set_queue_paused(session, operator, queue, action == "pause")
    return _back("/console/queues", notice)


@router.get("/schedules")
async def schedules_page(request: Request, operator: Viewer, session: ReadSession) -> HTMLResponse:
    schedules = await jobs_repository.list_schedules(session)
    last_jobs = {}
    for schedule in schedules:
        if schedule.last_job_id is not None:
            last_jobs[schedule.name] = await jobs_repository.job_by_id(
                session, schedule.last_job_id
            )
    return _render(
        request,
        "schedules.html",
        operator,
        page="schedules",
        schedules=schedules,
        last_jobs=last_jobs,
    )


@router.post("/schedules/{name}/{action}")
async def schedule_action(
    request: Request, operator: Actor, session: DbSession, name: str, action: str
) -> Response:
    if action in ("enable", "disable"):
        act = service.set_schedule_enabled(session, operator, name, action == "enable")
    elif action == "run-now":
        act = service.run_schedule_now(session, operator, name)
    else:
        return _back("/console/schedules", "unknown schedule action", error=True)
    return await _acted("/console/schedules", act)


# --- integrations ----------------------------------------------------------------------


@router.get("/integrations")
async def integrations_page(
    request: Request, operator: Viewer, session: ReadSession, integration: FilterText = None
) -> HTMLResponse:
    figures = await repository.integration_figures(session, timedelta(days=1))
    runs = await repository.recent_runs(session, PAGE_SIZE, integration)
    letters = await repository.open_dead_letters(session, PAGE_SIZE, integration)
    settings: Settings = request.app.state.settings
    keys = frozenset(key.lower() for key in settings.console_masked_keys)
    return _render(
        request,
        "integrations.html",
        operator,
        page="integrations",
        figures=figures,
        runs=runs,
        letters=letters,
        entries=catalog.entries,
        selected=integration,
        mask=lambda value: service.masked(value, keys),
    )


@router.post("/integrations/{integration}/sync")
async def integration_sync(
    request: Request,
    operator: Actor,
    session: DbSession,
    integration: str,
    trigger: Annotated[str, Form(max_length=100)],
) -> Response:
    act = service.trigger_sync(session, operator, integration, trigger)
    return await _acted("/console/integrations", act)


@router.post("/dead-letters/{letter_id}/{how}")
async def dead_letter_action(
    request: Request, operator: Actor, session: DbSession, letter_id: int, how: str
) -> Response:
    if how not in ("replay", "dismiss") or not 1 <= letter_id < 2**63:
        return _back("/console/integrations", "unknown dead letter action", error=True)
    act = service.resolve_dead_letter(session, operator, letter_id, how)
    return await _acted("/console/integrations", act)


# --- live channels and audit -------------------------------------------------------------


def _samples(metric: Any) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in metric.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]


@router.get("/channels")
async def channels_page(request: Request, operator: Viewer) -> HTMLResponse:
    broker = request.app.state.broker
    return _render(
        request,
        "channels.html",
        operator,
        page="channels",
        connections=_samples(CONNECTIONS),
        subscriptions=_samples(SUBSCRIPTIONS),
        dropped=_samples(CLIENTS_DROPPED),
        recent=list(reversed(broker.recent)),
    )


@router.get("/audit")
async def audit_page(
    request: Request,
    operator: Viewer,
    session: ReadSession,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> HTMLResponse:
    entries = await repository.audit_page(session, PAGE_SIZE + 1, before)
    next_page = (
        f"/console/audit?before={entries[PAGE_SIZE - 1].id}" if len(entries) > PAGE_SIZE else None
    )
    return _render(
        request,
        "audit.html",
        operator,
        page="audit",
        entries=entries[:PAGE_SIZE],
        next_page=next_page,
    )


@router.get("/audit/{entry_id}")
async def audit_entry_page(
    request: Request, operator: Viewer, session: ReadSession, entry_id: int
) -> HTMLResponse:
    entry = await repository.audit_entry(session, entry_id) if 1 <= entry_id < 2**63 else None
    if entry is None:
        return _render(
            request, "missing.html", operator, 404, page="audit", what=f"Audit entry {entry_id}"
        )
    template = "_progress.html" if request.headers.get("HX-Request") else "audit_entry.html"
    return _render(request, template, operator, page="audit", entry=entry)


# --- wiring ------------------------------------------------------------------------------


async def _login_required(request: Request, exc: Exception) -> Response:
    if request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{LOGIN_PATH}?next={quote(target)}", status_code=303)
    return _render(request, "login.html", None, 401, next="/console", error="Log in first.")


async def _action_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ActionRefused)
    try:
        operator = await current_operator(request)
    except LoginRequired:
        operator = None
    if operator is not None:
        async with database_of(request).transaction() as session:
            service.record(
                session,
                operator,
                f"{request.method} {request.url.path}"[:64],
                request.url.path,
                "refused",
                exc.reason,
            )
    return _render(request, "refused.html", operator, 403, page=None, reason=exc.reason)


def install_console(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(ActionRefused, _action_refused)
