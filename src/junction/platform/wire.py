"""How values look on the wire, shared by every domain's schemas (DESIGN rule 5: UTC, ISO
8601 with ``Z``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer


def wire_time(moment: datetime) -> str:
    """``2025-10-27T12:00:00.000Z``: UTC, milliseconds, as the seeds show times."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


WireTime = Annotated[datetime, PlainSerializer(wire_time, return_type=str)]
