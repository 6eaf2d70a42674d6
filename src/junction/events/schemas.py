"""Wire shapes of the events API: seed 002's ``/api/v1/events`` and the provider challenge's
``/search``, byte for byte as those documents show them (times with milliseconds and
``Z``, prices as decimal strings such as ``"20.0"``)."""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from junction.platform.pagination import PaginationMeta
from junction.platform.wire import WireTime


def wire_price(price: Decimal) -> str:
    """As the seed shows prices: the shortest decimal with at least one fraction digit."""
    text = f"{price.normalize():f}"
    return text if "." in text else f"{text}.0"


class ZonePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    uuid: UUID
    external_id: str
    name: str
    capacity: int
    price: Annotated[str, BeforeValidator(wire_price)]
    numbered: bool
    created_at: WireTime


class SlotPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    uuid: UUID
    external_id: str
    starts_at: WireTime
    ends_at: WireTime
    sell_from: WireTime
    sell_to: WireTime
    sold_out: bool
    created_at: WireTime
    zones: list[ZonePublic]


class EventPublic(BaseModel):
    # Built from a mapping, {"event": event, "slots": slots}: the answer carries the event's
    # current slots in the asked range, which the service queries apart, not event.slots
    # (every slot, and never loaded). A comment rather than a docstring, which would become
    # the schema's description in the OpenAPI document.
    id: int
    uuid: UUID
    external_id: str
    title: str
    sell_mode: str
    organizer_company_id: int | None
    created_at: WireTime
    slots: list[SlotPublic]

    @model_validator(mode="before")
    @classmethod
    def _read_event(cls, source: Any) -> Any:
        if not isinstance(source, dict) or "event" not in source:
            return source
        event = source["event"]
        read = cls.model_fields.keys() - {"slots"}
        return {name: getattr(event, name) for name in read} | {"slots": source["slots"]}


EVENTS_EXAMPLE: dict[str, Any] = {
    "meta": {"pagination": {"current_page": 1, "per_page": 20, "total_count": 1, "total_pages": 1}},
    "data": [
        {
            "id": 84,
            "uuid": "62d1630c-d84b-4d59-8b62-75a4ccbd78a7",
            "external_id": "291",
            "title": "Camela en concierto",
            "sell_mode": "online",
            "organizer_company_id": None,
            "created_at": "2025-03-17T13:25:48.481Z",
            "slots": [
                {
                    "id": 229,
                    "uuid": "5fec7f8b-531a-4b17-bb82-9a10169e2a97",
                    "external_id": "291",
                    "starts_at": "2021-06-30T21:00:00.000Z",
                    "ends_at": "2021-06-30T22:00:00.000Z",
                    "sell_from": "2020-07-01T00:00:00.000Z",
                    "sell_to": "2021-06-30T20:00:00.000Z",
                    "sold_out": False,
                    "created_at": "2025-03-17T15:33:10.766Z",
                    "zones": [
                        {
                            "id": 423,
                            "uuid": "013276f2-a59d-4e9a-a0ac-fb1e603e2e22",
                            "external_id": "40",
                            "name": "Platea",
                            "capacity": 243,
                            "price": "20.0",
                            "numbered": True,
                            "created_at": "2025-03-17T15:33:10.766Z",
                        }
                    ],
                }
            ],
        }
    ],
}


class EventsPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EVENTS_EXAMPLE]})

    meta: PaginationMeta
    data: list[EventPublic]


class SearchEvent(BaseModel):
    """One current slot of an event that was ever sold online, as the challenge names it."""

    id: UUID
    title: str
    start_date: date
    start_time: time
    end_date: date
    end_time: time
    min_price: float | None
    max_price: float | None


class SearchEvents(BaseModel):
    events: list[SearchEvent]


class SearchError(BaseModel):
    code: str
    message: str


SEARCH_EXAMPLE: dict[str, Any] = {
    "data": {
        "events": [
            {
                "id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                "title": "Camela en concierto",
                "start_date": "2021-06-30",
                "start_time": "21:00:00",
                "end_date": "2021-06-30",
                "end_time": "22:00:00",
                "min_price": 15.0,
                "max_price": 30.0,
            }
        ]
    },
    "error": None,
}


class SearchResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SEARCH_EXAMPLE]})

    data: SearchEvents | None
    error: SearchError | None


class SearchErrorResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {"code": "invalid_parameter", "message": "ends_at is missing"},
                    "data": None,
                }
            ]
        }
    )

    error: SearchError
    data: None


class ErrorsBody(BaseModel):
    """The error shape of every route but ``/search``."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"errors": ["End date is missing or invalid"]}]}
    )

    errors: list[str]


class EventSyncAccepted(BaseModel):
    job_id: int
    created: bool
    """False when a sync was already queued or running: its id is returned."""
    status_url: str


class EventSyncRunPublic(BaseModel):
    # Read from the run's IntegrationRun row; the kit's set_aside and notes keep this
    # API's names, skipped and errors.
    model_config = ConfigDict(from_attributes=True)

    id: int
    trigger: str
    source: str
    status: str
    started_at: WireTime
    finished_at: WireTime | None
    created: int
    updated: int
    unchanged: int
    skipped: int = Field(validation_alias="set_aside")
    rows_written: int
    errors: list[str] = Field(validation_alias="notes")


class EventSyncRuns(BaseModel):
    data: list[EventSyncRunPublic]
