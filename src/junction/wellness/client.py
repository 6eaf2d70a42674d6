"""The adapter of the wellness API: paging through its lists, and its records made ours.

Calls go through ``junction.platform.http.OutboundClient`` (timeout, retries with jittered
backoff, Retry-After, 401/403 stop at once, 404 reported). The API's shape:

* ``GET /clients`` and ``GET /appointments`` with ``limit``, ``cursor`` (opaque, from
  ``meta.next_cursor``) and ``updated_since`` (ISO 8601; inclusive). Records come ordered by
  ``(updated_at, id)``, so a record changed while we page moves behind us and is read
  again rather than skipped.
* ``{"data": [...], "meta": {"next_cursor", "server_time", "updated_since"}}``. ``meta.
  updated_since`` echoes the filter when the API applied it; without it the list is full.
* With ``updated_since``, records deleted upstream come as tombstones
  ``{"id", "deleted": true, "updated_at"}``; a full list simply lacks them.

Upstream times arrive as ISO 8601 with or without an offset (without one, they are in
``JUNCTION_WELLNESS_API_TIMEZONE``), as separate date and time fields, or as epoch seconds;
the sync kit's record readers turn each into an aware UTC datetime.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from junction.platform.http import OutboundClient, OutboundError, RetryPolicy
from junction.platform.integrations.adapters import PullAdapter
from junction.platform.integrations.demo import demo_emulator_url
from junction.platform.integrations.records import (
    RecordRejected,
    bounded_text,
    date_and_time,
    identifier,
    parse_upstream_time,
)
from junction.settings import Settings

INTEGRATION = "wellness"
EMULATOR_NAME = "wellness"
DEMO_API_KEY = "demo-wellness-key"  # the demo emulator's own key, not a secret


class WellnessNotConfigured(OutboundError):
    """No base URL: the sync refuses to run rather than invent data."""


class MalformedResponse(OutboundError):
    """A page that is not the JSON object the API documents."""


@dataclass(frozen=True)
class ClientRecord:
    external_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    updated_at: datetime | None

    def content_hash(self) -> str:
        return content_hash({k: v for k, v in vars(self).items() if k != "updated_at"})


@dataclass(frozen=True)
class AppointmentRecord:
    external_id: str
    client_external_id: str
    client_first_name: str | None
    client_last_name: str | None
    starts_at: datetime
    ends_at: datetime | None
    status: str | None
    service: str | None
    notes: str | None
    updated_at: datetime | None

    def content_hash(self) -> str:
        skipped = {"updated_at", "client_first_name", "client_last_name"}
        return content_hash({k: v for k, v in vars(self).items() if k not in skipped})


@dataclass(frozen=True)
class Tombstone:
    external_id: str
    updated_at: datetime | None


@dataclass(frozen=True)
class Page:
    records: list[Any]
    next_cursor: str | None
    server_time: datetime | None
    filtered_since: bool


def content_hash(fields: Mapping[str, Any]) -> str:
    """Of a record's flat fields (``vars``, not ``asdict``: that deep-copies every value,
    and was most of a full sync's time)."""
    encoded = json.dumps(fields, sort_keys=True, default=_json_default).encode()
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def api_base_url(settings: Settings) -> str:
    """The configured URL, or in demo mode the emulator mounted in this very app."""
    if settings.wellness_api_url:
        return settings.wellness_api_url
    if settings.demo:
        return demo_emulator_url(settings, EMULATOR_NAME)
    raise WellnessNotConfigured(
        INTEGRATION,
        "JUNCTION_WELLNESS_API_URL (or MOCK_API_URL) is not set; "
        "nothing was synced and no data was made up",
    )


def api_key(settings: Settings) -> str | None:
    if settings.wellness_api_key is not None:
        return settings.wellness_api_key.get_secret_value()
    return DEMO_API_KEY if settings.demo and not settings.wellness_api_url else None


class WellnessApi(PullAdapter[Page]):
    """Pages of one list of the wellness API."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        key = api_key(settings)
        self.page_size = settings.wellness_page_size
        self.outbound = OutboundClient(
            INTEGRATION,
            api_base_url(settings),
            timeout=settings.wellness_api_timeout_seconds,
            policy=RetryPolicy(
                attempts=settings.wellness_api_retry_attempts + 1,
                backoff_base_seconds=settings.wellness_api_backoff_seconds,
            ),
            headers={"Authorization": f"Bearer {key}"} if key else None,
            transport=transport,
        )

    async def __aenter__(self) -> WellnessApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.outbound.aclose()

    async def pages(self, kind: str, since: datetime | None) -> AsyncIterator[Page]:
        """Every page of ``/<kind>``, following ``next_cursor`` until there is none."""
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": self.page_size}
            if since is not None:
                params["updated_since"] = since.isoformat().replace("+00:00", "Z")
            if cursor is not None:
                params["cursor"] = cursor
            response = await self.outbound.get(f"/{kind}", params=params)
            page = _parse_page(response, kind)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


def _parse_page(response: httpx.Response, kind: str) -> Page:
    try:
        body = response.json()
    except ValueError:
        raise MalformedResponse(
            INTEGRATION, f"/{kind} answered with a body that is not JSON"
        ) from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise MalformedResponse(INTEGRATION, f'/{kind} answered without a "data" list')
    meta: dict[str, Any] = body["meta"] if isinstance(body.get("meta"), dict) else {}
    next_cursor = meta.get("next_cursor")
    if next_cursor is not None and not isinstance(next_cursor, str):
        raise MalformedResponse(INTEGRATION, f"/{kind} sent a next_cursor that is not a string")
    return Page(
        records=body["data"],
        next_cursor=next_cursor or None,
        server_time=_server_time(meta.get("server_time"), response),
        filtered_since=meta.get("updated_since") is not None,
    )


def _server_time(value: Any, response: httpx.Response) -> datetime | None:
    """Upstream's clock: meta.server_time, else the Date header (whole seconds, so one is
    taken off: the cursor must never be later than a change it has not seen)."""
    if value is not None:
        try:
            return parse_upstream_time(value, UTC)
        except ValueError:
            pass
    header = response.headers.get("date")
    if header is None:
        return None
    try:
        return parsedate_to_datetime(header).astimezone(UTC) - timedelta(seconds=1)
    except (TypeError, ValueError):
        return None


class RecordParser:
    """Upstream records into ``ClientRecord`` / ``AppointmentRecord`` / ``Tombstone``."""

    def __init__(self, zone_name: str) -> None:
        self.zone = ZoneInfo(zone_name)

    def client(self, raw: Any) -> ClientRecord | Tombstone:
        fields, external_id = self._common(raw)
        if fields.get("deleted") is True:
            return Tombstone(external_id, self._optional_time(fields, "updated_at", external_id))
        return ClientRecord(
            external_id=external_id,
            first_name=_text(fields, "first_name", external_id),
            last_name=_text(fields, "last_name", external_id),
            email=_text(fields, "email", external_id),
            phone=_text(fields, "phone", external_id),
            updated_at=self._optional_time(fields, "updated_at", external_id),
        )

    def appointment(self, raw: Any) -> AppointmentRecord | Tombstone:
        fields, external_id = self._common(raw)
        updated_at = self._optional_time(fields, "updated_at", external_id)
        if fields.get("deleted") is True:
            return Tombstone(external_id, updated_at)
        client: dict[str, Any] = fields["client"] if isinstance(fields.get("client"), dict) else {}
        client_id = identifier(fields.get("client_id", client.get("id")))
        if client_id is None:
            raise RecordRejected(external_id, "client_id: is required")
        starts_at, ends_at = self._appointment_times(fields, external_id)
        return AppointmentRecord(
            external_id=external_id,
            client_external_id=client_id,
            client_first_name=_text(client, "first_name", external_id),
            client_last_name=_text(client, "last_name", external_id),
            starts_at=starts_at,
            ends_at=ends_at,
            status=_text(fields, "status", external_id),
            service=_text(fields, "service", external_id),
            notes=_text(fields, "notes", external_id),
            updated_at=updated_at,
        )

    def _common(self, raw: Any) -> tuple[dict[str, Any], str]:
        if not isinstance(raw, dict):
            raise RecordRejected(None, f"a record must be a JSON object, not {raw!r:.80}")
        external_id = identifier(raw.get("id"))
        if external_id is None:
            raise RecordRejected(None, "id: is required (a non-empty string or integer)")
        return raw, external_id

    def _optional_time(
        self, fields: dict[str, Any], name: str, external_id: str
    ) -> datetime | None:
        if fields.get(name) is None:
            return None
        try:
            return parse_upstream_time(fields[name], self.zone)
        except ValueError as exc:
            raise RecordRejected(external_id, f"{name}: {exc}") from None

    def _appointment_times(
        self, fields: dict[str, Any], external_id: str
    ) -> tuple[datetime, datetime | None]:
        try:
            starts_at = self._moment(fields, "start_time", "start")
            if starts_at is None:
                raise ValueError("is required (start_time, or date with start)")
            ends_at = self._moment(fields, "end_time", "end")
            if ends_at is None and fields.get("duration_minutes") is not None:
                ends_at = starts_at + timedelta(minutes=_minutes(fields["duration_minutes"]))
        except ValueError as exc:
            raise RecordRejected(external_id, f"start/end: {exc}") from None
        if ends_at is not None and ends_at < starts_at:
            raise RecordRejected(external_id, "end: is before the start")
        return starts_at, ends_at

    def _moment(self, fields: dict[str, Any], combined: str, clock: str) -> datetime | None:
        if fields.get(combined) is not None:
            return parse_upstream_time(fields[combined], self.zone)
        if fields.get("date") is not None and fields.get(clock) is not None:
            return date_and_time(fields["date"], fields[clock], self.zone)
        return None


def _minutes(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"duration_minutes {value!r} is not a non-negative number")
    return float(value)


# The widths of the columns they land in: a longer value is refused here, not by the database.
_TEXT_LIMITS = {"email": 320, "phone": 64, "status": 32, "notes": 10_000}


def _text(fields: Mapping[str, Any], name: str, external_id: str) -> str | None:
    return bounded_text(fields, name, external_id, _TEXT_LIMITS.get(name, 200))
