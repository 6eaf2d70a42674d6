"""An emulator of the wellness API that clients and appointments are synced from.

Records are generated from their index and a seed, so a hundred thousand clients cost no
memory until they change: only changed, created and deleted records are stored. Each
record's ``updated_at`` grows with its index; a change stamps the emulator's clock, so
lists come ordered by ``(updated_at, id)`` and a change made while a client pages moves
the record behind it (read again, never skipped).

API (what the real one documents, see docs/wellness.md):

* ``GET /clients`` and ``GET /appointments``: ``limit`` (1..1000, default 100), ``cursor``
  (from ``meta.next_cursor``), ``updated_since`` (ISO 8601, inclusive). Auth:
  ``Authorization: Bearer <key>`` or ``X-API-Key``; a wrong key gets 401.
* ``{"data": [...], "meta": {"next_cursor", "server_time", "updated_since", "limit"}}``.
* Deletes: a full list omits deleted records; with ``updated_since`` they come as
  tombstones ``{"id", "deleted": true, "updated_at"}``.
* Appointment times come in five formats, by index: ISO 8601 with an offset, with ``Z``,
  without an offset (in the emulator's ``naive_zone``), separate ``date``/``start``/``end``
  fields (same zone), and epoch seconds with ``duration_minutes``.

Control (no auth, for tests and the demo): ``POST /_admin/reset``, ``POST /_admin/mode``
(``{"mode": "ok|rate_limit|error|slow|malformed|invalid_json", "count", "retry_after",
"delay", "every"}``), ``POST /_admin/changes`` (``{"kind", "update", "delete", "create"}``),
``GET /_admin/stats`` and ``GET /_admin/truth/appointments/{id}`` (a start time in UTC).

Run alone: ``python -m junction.emulators.wellness --port 8100 --clients 100000``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)
FIRST_DAY = datetime(2026, 1, 5, tzinfo=UTC)
STEP = timedelta(milliseconds=1)
FIRST_NAMES = ("Ada", "Grace", "Alan", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Torvalds", "Liskov", "Thompson", "Hamilton")
SERVICES = ("massage", "physiotherapy", "yoga", "nutrition", "acupuncture", "pilates")
STATUSES = ("scheduled", "scheduled", "scheduled", "completed", "cancelled")
MODES = ("ok", "rate_limit", "error", "slow", "malformed", "invalid_json")
PREFIX = {"clients": "c", "appointments": "a"}


@dataclass(frozen=True)
class EmulatorConfig:
    clients: int = 200
    appointments: int = 500
    seed: int = 1
    api_key: str = "demo-wellness-key"
    naive_zone: str = "UTC"


@dataclass
class Mode:
    name: str = "ok"
    count: int | None = None
    """How many list requests the mode affects; None: until changed."""
    retry_after: int = 1
    delay: float = 0.5
    every: int = 10
    blocked_until: float | None = None


@dataclass
class Change:
    version: int
    updated_at: datetime
    deleted: bool = False


def _mix(index: int, seed: int) -> int:
    """A cheap deterministic hash: the same index and seed always give the same record."""
    return ((index * 2654435761) ^ (seed * 40503)) % 2**32


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def index_of(kind: str, external_id: str) -> int | None:
    prefix = PREFIX[kind]
    digits = external_id[len(prefix) :]
    if not external_id.startswith(prefix) or not digits.isdigit():
        return None
    return int(digits)


def external_id_of(kind: str, index: int) -> str:
    return f"{PREFIX[kind]}{index:07d}"


@dataclass
class WellnessEmulator:
    """The emulator's state; the ASGI app serves it, tests may also drive it directly."""

    config: EmulatorConfig = field(default_factory=EmulatorConfig)
    mode: Mode = field(default_factory=Mode)
    changes: dict[str, dict[int, Change]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    ignore_updated_since: bool = False
    """Behave like an API without change feeds: ``updated_since`` is ignored."""
    _clock: datetime = BASE_TIME
    _ordered: dict[str, list[tuple[datetime, int]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.reset(self.config)

    def reset(self, config: EmulatorConfig | None = None) -> None:
        with self._lock:
            self.config = config or self.config
            self.mode = Mode()
            self.changes = {"clients": {}, "appointments": {}}
            self.sizes = {
                "clients": self.config.clients,
                "appointments": self.config.appointments,
            }
            self.requests = Counter()
            self.ignore_updated_since = False
            self._ordered = {}

    def set_mode(self, mode: Mode) -> None:
        if mode.name not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        with self._lock:
            self.mode = mode

    def now(self) -> datetime:
        """Strictly increasing, and never behind the generated records."""
        self._clock = max(datetime.now(UTC), self._clock + timedelta(microseconds=1))
        return self._clock

    def apply_changes(
        self, kind: str, update: list[str], delete: list[str], create: int
    ) -> dict[str, list[str]]:
        """Update or delete records by id and create new ones; returns the ids touched."""
        with self._lock:
            touched: dict[str, list[str]] = {"updated": [], "deleted": [], "created": []}
            for external_id, deleting in [(i, False) for i in update] + [(i, True) for i in delete]:
                index = index_of(kind, external_id)
                if index is None or not self._exists(kind, index):
                    raise KeyError(external_id)
                previous = self.changes[kind].get(index)
                version = previous.version + 1 if previous else 1
                self.changes[kind][index] = Change(version, self.now(), deleted=deleting)
                touched["deleted" if deleting else "updated"].append(external_id)
            for _ in range(create):
                self.sizes[kind] += 1
                index = self.sizes[kind]
                self.changes[kind][index] = Change(0, self.now())
                touched["created"].append(external_id_of(kind, index))
            self._ordered.pop(kind, None)
            return touched

    def spread_ids(self, kind: str, count: int, offset: int = 0) -> list[str]:
        """``count`` live ids spread evenly over the list (for "change 1 %" scenarios)."""
        live = self.sizes[kind]
        step = max(live // max(count, 1), 1)
        picked = []
        for index in range(1 + offset, live + 1, step):
            change = self.changes[kind].get(index)
            if change is None or not change.deleted:
                picked.append(external_id_of(kind, index))
            if len(picked) == count:
                break
        return picked

    def _exists(self, kind: str, index: int) -> bool:
        return 1 <= index <= self.sizes[kind]

    # Listing ----------------------------------------------------------------------------

    def page(
        self, kind: str, limit: int, cursor: str | None, since: datetime | None
    ) -> dict[str, Any]:
        server_time = self.now()
        position: tuple[datetime, int] | None = (
            _decode_cursor(cursor) if cursor else _start_position(since)
        )
        records: list[dict[str, Any]] = []
        index_list = self._changed_in_order(kind)
        while position is not None and len(records) < limit:
            found = self._next_after(kind, position, index_list)
            if found is None:
                position = None
                break
            position, index = found
            change = self.changes[kind].get(index)
            if change is not None and change.deleted:
                if since is not None:
                    records.append(self._tombstone(kind, index, change))
                continue
            records.append(self._record(kind, index, change))
        next_cursor = None
        if position is not None and self._next_after(kind, position, index_list) is not None:
            next_cursor = _encode_cursor(position)
        return {
            "data": records,
            "meta": {
                "next_cursor": next_cursor,
                "server_time": _iso(server_time),
                "updated_since": _iso(since) if since else None,
                "limit": limit,
            },
        }

    def _changed_in_order(self, kind: str) -> list[tuple[datetime, int]]:
        ordered = self._ordered.get(kind)
        if ordered is None:
            ordered = sorted((c.updated_at, i) for i, c in self.changes[kind].items())
            self._ordered[kind] = ordered
        return ordered

    def _next_after(
        self,
        kind: str,
        position: tuple[datetime, int],
        changed: list[tuple[datetime, int]],
    ) -> tuple[tuple[datetime, int], int] | None:
        """The first record strictly after ``position`` in (updated_at, index) order."""
        moment, index = position
        base_size = self.config.clients if kind == "clients" else self.config.appointments
        candidate = max(_base_index_at_or_after(moment), 1)
        while candidate <= base_size:
            stamp = BASE_TIME + candidate * STEP
            if (stamp, candidate) > (moment, index) and candidate not in self.changes[kind]:
                return (stamp, candidate), candidate
            candidate += 1
        at = bisect_left(changed, (moment, index + 1))
        if at < len(changed):
            return changed[at], changed[at][1]
        return None

    # Records ----------------------------------------------------------------------------

    def _updated_at(self, index: int, change: Change | None) -> datetime:
        return change.updated_at if change else BASE_TIME + index * STEP

    def _tombstone(self, kind: str, index: int, change: Change) -> dict[str, Any]:
        return {
            "id": external_id_of(kind, index),
            "deleted": True,
            "updated_at": _iso(change.updated_at),
        }

    def _record(self, kind: str, index: int, change: Change | None) -> dict[str, Any]:
        version = change.version if change else 0
        updated_at = _iso(self._updated_at(index, change))
        if kind == "clients":
            record = self.client(index, version)
        else:
            record = self.appointment(index, version)
        record["updated_at"] = updated_at
        if self.mode.name == "malformed" and index % self.mode.every == 0:
            return _corrupt(record, index // self.mode.every)
        return record

    def client(self, index: int, version: int = 0) -> dict[str, Any]:
        mixed = _mix(index, self.config.seed)
        first = FIRST_NAMES[mixed % len(FIRST_NAMES)]
        last = LAST_NAMES[(mixed >> 8) % len(LAST_NAMES)]
        return {
            "id": external_id_of("clients", index),
            "first_name": first,
            "last_name": last,
            "email": f"{first}.{last}.{index}@example.com".lower(),
            "phone": f"+1-555-{(mixed + version * 7919) % 10_000:04d}",
        }

    def appointment_client_index(self, index: int) -> int:
        return _mix(index, self.config.seed + 1) % max(self.config.clients, 1) + 1

    def appointment_start(self, index: int) -> datetime:
        mixed = _mix(index, self.config.seed)
        day = FIRST_DAY + timedelta(days=index % 180)
        local = datetime(day.year, day.month, day.day, 8 + mixed % 10, 30 * ((mixed >> 4) % 2))
        return local.replace(tzinfo=ZoneInfo(self.config.naive_zone)).astimezone(UTC)

    def appointment(self, index: int, version: int = 0) -> dict[str, Any]:
        mixed = _mix(index, self.config.seed)
        client_index = self.appointment_client_index(index)
        client = self.client(client_index)
        record: dict[str, Any] = {
            "id": external_id_of("appointments", index),
            "client_id": client["id"],
            "client": {k: client[k] for k in ("id", "first_name", "last_name")},
            "service": SERVICES[(mixed >> 3) % len(SERVICES)],
            "status": STATUSES[(mixed + version) % len(STATUSES)],
            "notes": f"visit {index}, revision {version}",
        }
        starts = self.appointment_start(index)
        minutes = (30, 45, 60)[(mixed >> 6) % 3]
        record.update(self._times(index, starts, starts + timedelta(minutes=minutes), minutes))
        return record

    def _times(self, index: int, starts: datetime, ends: datetime, minutes: int) -> dict[str, Any]:
        zone = ZoneInfo(self.config.naive_zone)
        shape = index % 5
        if shape == 0:
            offset = timezone(timedelta(hours=2))
            return {
                "start_time": starts.astimezone(offset).isoformat(),
                "end_time": ends.astimezone(offset).isoformat(),
            }
        if shape == 1:
            return {"start_time": _iso(starts), "end_time": _iso(ends)}
        local_start, local_end = starts.astimezone(zone), ends.astimezone(zone)
        if shape == 2:
            return {
                "start_time": local_start.replace(tzinfo=None).isoformat(),
                "end_time": local_end.replace(tzinfo=None).isoformat(),
            }
        if shape == 3:
            return {
                "date": local_start.date().isoformat(),
                "start": local_start.strftime("%H:%M"),
                "end": local_end.strftime("%H:%M"),
            }
        return {"start_time": int(starts.timestamp()), "duration_minutes": minutes}


def _corrupt(record: dict[str, Any], variant: int) -> dict[str, Any]:
    """Three kinds of bad record: a wrong type, an unreadable time, a missing id."""
    broken = dict(record)
    shape = variant % 3
    if shape == 0:
        broken["first_name" if "first_name" in broken else "status"] = 12345
    elif shape == 1:
        broken["updated_at"] = "sometime last week"
    else:
        broken.pop("id")
    return broken


def _base_index_at_or_after(moment: datetime) -> int:
    """The first generated index whose updated_at is at or after ``moment``."""
    if moment <= BASE_TIME:
        return 1
    steps, remainder = divmod(moment - BASE_TIME, STEP)
    return int(steps) + (1 if remainder else 0)


def _start_position(since: datetime | None) -> tuple[datetime, int]:
    """Just before the first record a list (from ``since``, inclusive) should show."""
    if since is None:
        return (BASE_TIME, 0)
    return (since, -1)


def _encode_cursor(position: tuple[datetime, int]) -> str:
    return f"{_iso(position[0])}|{position[1]}"


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    moment, _, index = cursor.partition("|")
    try:
        return datetime.fromisoformat(moment).astimezone(UTC), int(index)
    except ValueError:
        raise ValueError("cursor is not one this API issued") from None


# The ASGI app -------------------------------------------------------------------------------


def create_wellness_emulator(emulator: WellnessEmulator | None = None) -> Starlette:
    """The emulator's ASGI app; ``app.state.emulator`` is its state."""
    state = emulator or WellnessEmulator()

    async def list_records(request: Request) -> Response:
        kind = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        return await _serve_list(state, request, kind)

    async def reset(request: Request) -> Response:
        body = await _json_body(request)
        allowed = {"clients", "appointments", "seed", "api_key", "naive_zone"}
        try:
            state.reset(replace(state.config, **{k: body[k] for k in allowed & body.keys()}))
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        return JSONResponse({"config": state.config.__dict__})

    async def set_mode(request: Request) -> Response:
        body = await _json_body(request)
        try:
            state.set_mode(Mode(**body))
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        return JSONResponse({"mode": state.mode.__dict__})

    async def change(request: Request) -> Response:
        body = await _json_body(request)
        kind = body.get("kind")
        if kind not in PREFIX:
            return _error(400, "kind must be clients or appointments")
        update, delete = body.get("update", []), body.get("delete", [])
        if isinstance(update, int):
            update = state.spread_ids(kind, update)
        if isinstance(delete, int):
            delete = state.spread_ids(kind, delete, offset=1)
        try:
            touched = state.apply_changes(kind, update, delete, int(body.get("create", 0)))
        except KeyError as exc:
            return _error(404, f"no {kind} record {exc.args[0]}")
        return JSONResponse(touched)

    async def stats(request: Request) -> Response:
        return JSONResponse({"requests": dict(state.requests), "sizes": state.sizes})

    async def truth(request: Request) -> Response:
        index = index_of("appointments", request.path_params["external_id"])
        if index is None:
            return _error(404, "no such appointment")
        return JSONResponse({"starts_at": _iso(state.appointment_start(index))})

    app = Starlette(
        routes=[
            Route("/clients", list_records),
            Route("/appointments", list_records),
            Route("/_admin/reset", reset, methods=["POST"]),
            Route("/_admin/mode", set_mode, methods=["POST"]),
            Route("/_admin/changes", change, methods=["POST"]),
            Route("/_admin/stats", stats),
            Route("/_admin/truth/appointments/{external_id}", truth),
        ]
    )
    app.state.emulator = state
    return app


async def _serve_list(state: WellnessEmulator, request: Request, kind: str) -> Response:
    if not _authorized(state, request):
        state.requests["401"] += 1
        return _error(401, "invalid or missing API key")
    failure = await _failure_of_mode(state)
    if failure is not None:
        return failure
    try:
        limit = int(request.query_params.get("limit", "100"))
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        since_text = request.query_params.get("updated_since")
        since = datetime.fromisoformat(since_text).astimezone(UTC) if since_text else None
        if state.ignore_updated_since:
            since = None
        body = state.page(kind, limit, request.query_params.get("cursor"), since)
    except ValueError as exc:
        state.requests["400"] += 1
        return _error(400, str(exc))
    state.requests["200"] += 1
    if state.mode.name == "invalid_json":
        return Response('{"data": [', media_type="application/json")
    return JSONResponse(body)


async def _failure_of_mode(state: WellnessEmulator) -> Response | None:
    """The failure the current mode asks for, counting down its remaining requests."""
    mode = state.mode
    if mode.name == "ok":
        return None
    if mode.name == "rate_limit" and _still_blocked(mode):
        # A client that did not wait as told is refused again, and does not use up the count.
        state.requests["429_early"] += 1
        return _error(429, "retried before Retry-After", {"Retry-After": str(mode.retry_after)})
    if mode.count is not None:
        if mode.count <= 0:
            state.mode = Mode()
            return None
        mode.count -= 1
    if mode.name == "slow":
        await asyncio.sleep(mode.delay)
    elif mode.name == "rate_limit":
        return _rate_limited(state, mode)
    elif mode.name == "error":
        state.requests["500"] += 1
        return _error(500, "internal error")
    return None


def _still_blocked(mode: Mode) -> bool:
    return mode.blocked_until is not None and time.monotonic() < mode.blocked_until


def _rate_limited(state: WellnessEmulator, mode: Mode) -> Response:
    state.requests["429"] += 1
    mode.blocked_until = time.monotonic() + mode.retry_after
    return _error(429, "rate limit exceeded", {"Retry-After": str(mode.retry_after)})


def _authorized(state: WellnessEmulator, request: Request) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    key = credentials.strip() if scheme.lower() == "bearer" else request.headers.get("x-api-key")
    return key == state.config.api_key


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="The wellness API emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--clients", type=int, default=EmulatorConfig.clients)
    parser.add_argument("--appointments", type=int, default=EmulatorConfig.appointments)
    parser.add_argument("--seed", type=int, default=EmulatorConfig.seed)
    parser.add_argument("--api-key", default=EmulatorConfig.api_key)
    args = parser.parse_args()
    config = EmulatorConfig(args.clients, args.appointments, args.seed, args.api_key)
    app = create_wellness_emulator(WellnessEmulator(config))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
