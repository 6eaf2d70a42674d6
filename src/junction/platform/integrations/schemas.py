"""How the kit's records answer in the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class DeadLetterPublic(BaseModel):
    """A record an integration set aside, with its payload and why."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    run_id: int
    kind: str
    external_id: str | None
    error: str
    payload: Any
    created_at: datetime
    resolved_at: datetime | None
