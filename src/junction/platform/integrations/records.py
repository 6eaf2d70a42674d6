"""Reading the records that come from outside: their ids, their text, their times.

Upstream APIs send the same values in many shapes; these readers take the shapes seen in
the wild and refuse the rest with ``RecordRejected``, which sets that one record aside
(with its id, when it has one) while the run goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

MAX_IDENTIFIER_LENGTH = 200


class RecordRejected(ValueError):
    """One upstream record that cannot be stored; it goes to the dead letters."""

    def __init__(self, external_id: str | None, message: str) -> None:
        super().__init__(message)
        self.external_id = external_id


def identifier(value: Any) -> str | None:
    """An upstream id (a non-empty string or an integer) as text, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if (
        isinstance(value, str)
        and value.strip()
        and len(value) <= MAX_IDENTIFIER_LENGTH
        and "\x00" not in value
    ):
        return value.strip()
    return None


def bounded_text(fields: Mapping[str, Any], name: str, external_id: str, limit: int) -> str | None:
    """``fields[name]``: absent, or a string of at most ``limit`` characters (the width of
    the column it lands in: a longer value is refused here, not by the database)."""
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordRejected(external_id, f"{name}: must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise RecordRejected(external_id, f"{name}: contains a NUL character")
    if len(value) > limit:
        raise RecordRejected(external_id, f"{name}: is longer than {limit} characters")
    return value


def parse_upstream_time(value: Any, zone: tzinfo) -> datetime:
    """ISO 8601 (offset, ``Z`` or none: then ``zone``), or epoch seconds; always UTC."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a time")
    text = value.strip()
    if text.lstrip("-").replace(".", "", 1).isdigit():
        return _from_epoch(float(text))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 time or epoch seconds") from None
    return _in_utc(moment, zone)


def date_and_time(day: Any, clock: Any, zone: tzinfo) -> datetime:
    """Separate ``date`` ("2026-03-01") and time ("14:30" or "14:30:00") fields, in UTC."""
    if not isinstance(day, str) or not isinstance(clock, str):
        raise ValueError(f"date {day!r} and time {clock!r} must both be strings")
    try:
        moment = datetime.combine(date.fromisoformat(day), time.fromisoformat(clock))
    except ValueError:
        raise ValueError(f"date {day!r} with time {clock!r} is not a valid time") from None
    return _in_utc(moment, zone)


def _in_utc(moment: datetime, zone: tzinfo) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _from_epoch(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{seconds!r} is not a valid epoch time") from None
