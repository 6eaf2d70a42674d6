"""The Airtable adapter: users written as records of one table, through pyairtable.

Records carry seed 000's fields plus ``Junction ID`` (the user's UUID), which every write
upserts on (``performUpsert``), so a write retried after a timeout that did land updates
the record instead of creating a second one.

pyairtable's own retries are turned off: a failed call fails the sync job, which the job
system retries with backoff and records. Airtable allows 5 requests per second per base
and answers more with 429 and a 30-second penalty, so every request first takes a slot
from the sync kit's ``UpstreamThrottle`` (``airtable_requests_per_second``, shared by every
process through Redis), and a 429 pushes the next slot past the penalty for all of them.
pyairtable is synchronous (requests), so calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Self

import requests
import structlog
from pyairtable import Api
from pyairtable.formulas import match

from junction.platform.integrations import UpstreamThrottle
from junction.platform.integrations.adapters import PushAdapter
from junction.platform.integrations.demo import demo_emulator_url
from junction.settings import Settings

log = structlog.get_logger(__name__)

DEFAULT_ENDPOINT = "https://api.airtable.com"
JUNCTION_ID_FIELD = "Junction ID"


class AirtableError(Exception):
    """A call to Airtable failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class AirtableRateLimited(AirtableError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True, status=429)


class AirtableNotConfigured(Exception):
    """No API key or base id: the sync waits until both are set."""


@dataclass(frozen=True)
class AirtableConnection:
    api_key: str
    base_id: str
    table: str
    endpoint_url: str


# The demo emulator's own token and base, not secrets.
DEMO_API_KEY = "key-demo"
DEMO_BASE_ID = "appDemoBase0000001"


def airtable_connection(settings: Settings) -> AirtableConnection | None:
    """The configured base, or in demo mode the emulator mounted in this very app."""
    if settings.airtable_api_key is not None and settings.airtable_base_id:
        return AirtableConnection(
            settings.airtable_api_key.get_secret_value(),
            settings.airtable_base_id,
            settings.airtable_table,
            settings.airtable_endpoint_url or DEFAULT_ENDPOINT,
        )
    if settings.demo:
        endpoint = settings.airtable_endpoint_url or demo_emulator_url(settings, "airtable")
        return AirtableConnection(DEMO_API_KEY, DEMO_BASE_ID, "Users", endpoint)
    return None


@dataclass(frozen=True)
class AirtableUser:
    """A user as the Airtable table holds it (seed 000's fields)."""

    junction_id: str
    first_name: str
    last_name: str
    email: str
    date_of_birth: date
    file_url: str | None = None
    file_name: str | None = None

    def fields(self) -> dict[str, Any]:
        return {
            JUNCTION_ID_FIELD: self.junction_id,
            "First Name": self.first_name,
            "Last Name": self.last_name,
            "Email": self.email,
            "Date of Birth": self.date_of_birth.isoformat(),
            "File Uploaded": (
                [{"url": self.file_url, "filename": self.file_name}] if self.file_url else []
            ),
        }


class AirtableUsers(PushAdapter[AirtableUser]):
    """The users table of the configured base."""

    def __init__(
        self, connection: AirtableConnection, settings: Settings, throttle: UpstreamThrottle
    ) -> None:
        timeout = settings.airtable_timeout_seconds
        api = Api(
            connection.api_key,
            # requests takes float timeouts; pyairtable's annotation says int.
            timeout=(min(timeout, 5.0), timeout),  # type: ignore[arg-type]
            retry_strategy=False,
            endpoint_url=connection.endpoint_url,
        )
        self.session = api.session
        self.table = api.table(connection.base_id, connection.table)
        self.throttle = throttle
        self.penalty_seconds = settings.airtable_rate_limit_wait_seconds

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.session.close()

    async def upsert(self, users: Sequence[AirtableUser]) -> dict[str, str]:
        """Create or update one batch (at most 10); answers Junction ID -> record id."""
        records = [{"fields": user.fields()} for user in users]
        result = await self._call(
            self.table.batch_upsert, records, key_fields=[JUNCTION_ID_FIELD], typecast=True
        )
        return {
            record["fields"][JUNCTION_ID_FIELD]: record["id"]
            for record in result["records"]
            if JUNCTION_ID_FIELD in record["fields"]
        }

    async def find(self, junction_id: str) -> str | None:
        """The record id of a user, if Airtable has one (a write that timed out may have)."""
        formula = match({JUNCTION_ID_FIELD: junction_id})
        records = await self._call(self.table.all, formula=formula, fields=[JUNCTION_ID_FIELD])
        return str(records[0]["id"]) if records else None

    async def delete(self, record_ids: Sequence[str]) -> None:
        """Delete one batch of records; a record already gone counts as deleted."""
        try:
            await self._call(self.table.batch_delete, list(record_ids))
        except AirtableError as exc:
            if exc.status != 404 or len(record_ids) > 1:
                raise
            log.info("airtable record already gone", record_id=record_ids[0])

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        await self.throttle.acquire()
        try:
            return await asyncio.to_thread(method, *args, **kwargs)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status == 429:
                await self.throttle.penalize(self.penalty_seconds)
                raise AirtableRateLimited(f"Airtable rate limit: {exc}") from exc
            retryable = status is None or status >= 500 or status == 408
            raise AirtableError(
                f"Airtable answered {status}: {_detail(exc)}", retryable=retryable, status=status
            ) from exc
        except requests.RequestException as exc:
            raise AirtableError(f"Airtable unreachable: {exc}", retryable=True) from exc


def _detail(exc: requests.HTTPError) -> str:
    return " ".join(str(arg) for arg in exc.args[1:]) or str(exc)
