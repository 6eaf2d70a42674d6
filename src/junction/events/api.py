"""Routes of the events domain: seed 002's API, the challenge's ``/search``, sync control.

Reads never wait on the provider: they are answered from the cache, or the database on a
miss. A cached answer is stored with its ETag, so a hit costs one cache lookup and no
serialisation, and ``If-None-Match`` gets a 304. ``CACHED_READS`` lets the platform answer
a hit before routing (see ``platform.http_cache``), with the same keys as the routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.datastructures import QueryParams

from junction.events import service
from junction.events.schemas import (
    ErrorsBody,
    EventsPage,
    EventSyncAccepted,
    EventSyncRunPublic,
    EventSyncRuns,
    SearchErrorResponse,
    SearchResponse,
)
from junction.platform.auth import Principal, Scope, require_scope
from junction.platform.cache import Cache, get_or_build
from junction.platform.db import Database, DbSession, ReadSession, database_of
from junction.platform.errors import ValidationFailed
from junction.platform.http_cache import CachedRead, cached_answer, entry_of
from junction.platform.integrations import DataVersionWatcher
from junction.platform.integrations import repository as runs
from junction.platform.jobs import enqueue
from junction.platform.ratelimit import rate_limit
from junction.settings import Settings

router = APIRouter(tags=["events"])
CACHE_NAMESPACE = "events"

DEFAULT_PER_PAGE = 20
ERRORS_EXAMPLE = {"errors": ["End date is missing or invalid"]}


def _error_doc(description: str, example: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"model": ErrorsBody, "description": description}
    if example is not None:
        doc["content"] = {"application/json": {"example": example}}
    return doc


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error_doc("No API key, or an invalid or revoked one."),
    403: _error_doc("The API key lacks the scope this route needs."),
    422: _error_doc("A parameter is invalid."),
}


STARTS_AT_DOC = "Start of the range, ISO 8601 (`2021-02-10T00:00:00Z`); no offset means UTC."
ENDS_AT_DOC = "End of the range, ISO 8601; a slot touching either end counts as overlapping."


def parse_moment(value: str | None) -> datetime | None:
    """An ISO 8601 date or date-time as aware UTC, or None if missing or invalid."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if " " in text and "T" in text:
        text = text.replace(" ", "+")  # an unencoded "+01:00" arrives as " 01:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _range_problems(
    starts_at: datetime | None, ends_at: datetime | None, start_name: str, end_name: str
) -> list[str]:
    problems = []
    if starts_at is None:
        problems.append(f"{start_name} is missing or invalid")
    if ends_at is None:
        problems.append(f"{end_name} is missing or invalid")
    if starts_at is not None and ends_at is not None and ends_at < starts_at:
        problems.append(f"{end_name} must not be before the {start_name.lower()}")
    return problems


def _list_problems(
    start: datetime | None, end: datetime | None, per_page: int, settings: Settings
) -> list[str]:
    problems = _range_problems(start, end, "Start date", "End date")
    if per_page > settings.events_max_per_page:
        problems.append(f"per_page must be at most {settings.events_max_per_page}")
    return problems


def _search_problems(start: datetime | None, end: datetime | None) -> list[str]:
    return _range_problems(start, end, "starts_at", "ends_at")


async def cached_json(
    request: Request, suffix: str, build: Callable[[Database], Awaitable[BaseModel]]
) -> Response:
    """The cached answer for ``suffix`` (built and stored on a miss), with ETag."""

    async def build_entry() -> bytes:
        return entry_of((await build(database_of(request))).model_dump_json().encode())

    cache: Cache = request.app.state.cache
    entry, hit = await get_or_build(cache, CACHE_NAMESPACE, suffix, build_entry)
    if_none_match = request.headers.get("if-none-match")
    return cached_answer(entry, hit, _max_age(request.app), if_none_match)


def _max_age(app: Starlette) -> int:
    settings: Settings = app.state.settings
    return settings.events_http_max_age_seconds


def data_version_watcher(app: Starlette) -> DataVersionWatcher:
    """The app's one watcher of the data version; the lifespan runs its timer."""
    watcher: DataVersionWatcher | None = getattr(app.state, "events_data_version", None)
    if watcher is None:
        settings: Settings = app.state.settings
        watcher = DataVersionWatcher(
            app.state.database, service.INTEGRATION, settings.events_cache_version_check_seconds
        )
        app.state.events_data_version = watcher
    return watcher


async def _data_version(app: Starlette) -> int:
    return await data_version_watcher(app).current()


async def _list_suffix(
    app: Starlette, start: datetime, end: datetime, page: int, per_page: int
) -> str:
    version = await _data_version(app)
    return f"{version}:list:{start.isoformat()}:{end.isoformat()}:{page}:{per_page}"


async def _search_suffix(app: Starlette, start: datetime, end: datetime) -> str:
    return f"{await _data_version(app)}:search:{start.isoformat()}:{end.isoformat()}"


def _page_number(value: str) -> int | None:
    """A page parameter the route would accept, or None (the route then answers). Longer
    numbers go to the route too: ``int()`` refuses strings of over 4,300 digits."""
    plain = value.isascii() and value.isdigit() and len(value) <= 9
    return int(value) if plain and int(value) >= 1 else None


async def _cached_list_suffix(app: Starlette, query: QueryParams) -> str | None:
    """The route's cache suffix for a query it would accept, checked by the same rules."""
    start, end = parse_moment(query.get("starts_at")), parse_moment(query.get("ends_at"))
    page = _page_number(query.get("page", "1"))
    per_page = _page_number(query.get("per_page", str(DEFAULT_PER_PAGE)))
    if page is None or per_page is None or _list_problems(start, end, per_page, app.state.settings):
        return None
    assert start is not None
    assert end is not None
    return await _list_suffix(app, start, end, page, per_page)


async def _cached_search_suffix(app: Starlette, query: QueryParams) -> str | None:
    start, end = parse_moment(query.get("starts_at")), parse_moment(query.get("ends_at"))
    if _search_problems(start, end):
        return None
    assert start is not None
    assert end is not None
    return await _search_suffix(app, start, end)


CACHED_READS = (
    CachedRead("/api/v1/events", CACHE_NAMESPACE, _cached_list_suffix, _max_age),
    CachedRead("/search", CACHE_NAMESPACE, _cached_search_suffix, _max_age),
)


@router.get(
    "/api/v1/events",
    summary="Events with a current slot in the range, with their slots and zones",
    response_model=EventsPage,
    responses={
        200: {"description": "One page of events, earliest first; ETag and Cache-Control set."},
        304: {"description": "Not modified: the If-None-Match ETag is still current."},
        422: _error_doc("A date is missing, invalid or reversed; bad paging.", ERRORS_EXAMPLE),
        429: _error_doc("Rate limited; see Retry-After."),
    },
)
async def list_events(
    request: Request,
    starts_at: Annotated[
        str | None, Query(description=STARTS_AT_DOC, examples=["2021-02-10T00:00:00Z"])
    ] = None,
    ends_at: Annotated[
        str | None, Query(description=ENDS_AT_DOC, examples=["2021-07-31T23:59:59Z"])
    ] = None,
    page: Annotated[int, Query(ge=1, description="Page number, from 1.")] = 1,
    per_page: Annotated[
        int, Query(ge=1, description="Events per page, at most `JUNCTION_EVENTS_MAX_PER_PAGE`.")
    ] = DEFAULT_PER_PAGE,
) -> Response:
    start, end = parse_moment(starts_at), parse_moment(ends_at)
    problems = _list_problems(start, end, per_page, request.app.state.settings)
    if problems:
        raise ValidationFailed(*problems)
    assert start is not None
    assert end is not None

    async def build(database: Database) -> BaseModel:
        async with database.reading() as session:
            return await service.events_page(session, start, end, page, per_page)

    return await cached_json(
        request, await _list_suffix(request.app, start, end, page, per_page), build
    )


@router.get(
    "/search",
    summary="The provider challenge's search: events ever sold online, one per slot",
    response_model=SearchResponse,
    responses={
        304: {"description": "Not modified."},
        400: {"model": SearchErrorResponse, "description": "A date is missing or invalid."},
        422: {"model": SearchErrorResponse, "description": "Never sent: errors are 400 here."},
    },
)
async def search(
    request: Request,
    starts_at: Annotated[
        str | None, Query(description=STARTS_AT_DOC, examples=["2021-02-10T00:00:00Z"])
    ] = None,
    ends_at: Annotated[
        str | None, Query(description=ENDS_AT_DOC, examples=["2021-07-31T23:59:59Z"])
    ] = None,
) -> Response:
    start, end = parse_moment(starts_at), parse_moment(ends_at)
    problems = _search_problems(start, end)
    if problems:
        error = {"code": "invalid_parameter", "message": "; ".join(problems)}
        return JSONResponse({"error": error, "data": None}, status_code=400)
    assert start is not None
    assert end is not None

    async def build(database: Database) -> BaseModel:
        async with database.reading() as session:
            return SearchResponse(data=await service.search(session, start, end), error=None)

    return await cached_json(request, await _search_suffix(request.app, start, end), build)


SyncScope = Annotated[Principal, Depends(require_scope(Scope.sync))]


@router.post(
    "/api/v1/events/sync",
    status_code=202,
    summary="Pull the provider's feed now (a job; two triggers in a row give one run)",
    dependencies=[Depends(rate_limit("write"))],
    responses={**AUTH_ERRORS, 429: _error_doc("Rate limited; see Retry-After.")},
)
async def trigger_sync(session: DbSession, principal: SyncScope) -> EventSyncAccepted:
    enqueued = await enqueue(
        session,
        service.SYNC_JOB,
        {"trigger": "api"},
        unique_key=service.SYNC_JOB,
        created_by=principal.key_id,
    )
    return EventSyncAccepted(
        job_id=enqueued.id, created=enqueued.created, status_url=f"/api/v1/jobs/{enqueued.id}"
    )


ReadScope = Annotated[Principal, Depends(require_scope(Scope.read))]


@router.get(
    "/api/v1/events/sync/runs",
    summary="The latest sync runs: when, status, counts and errors",
    responses=AUTH_ERRORS,
)
async def sync_runs(
    session: ReadSession,
    _: ReadScope,
    limit: Annotated[int, Query(ge=1, le=100, description="How many runs, newest first.")] = 20,
) -> EventSyncRuns:
    recent = await runs.list_runs(session, service.INTEGRATION, limit=limit)
    return EventSyncRuns(data=[EventSyncRunPublic.model_validate(run) for run in recent])
