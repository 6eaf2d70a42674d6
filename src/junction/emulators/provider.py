"""An emulator of the ticketing provider: ``GET /api/events`` answers its XML feed.

By default it rotates through the provider's three real consecutive responses (kept byte
for byte in ``fixtures/provider``), as the real provider does. Other behaviours, for the
demo and the tests, are chosen per request with ``?mode=`` or for every later request with
``PUT /_mode`` (JSON ``{"mode": ..., "delay": ..., "zones": ...}``):

* ``rotate`` (default): response_1, response_2, response_3, response_1, ...
* ``fixed``: always ``?response=N`` (1-3) or ``?response=plan`` (the planList format)
* ``slow``: waits ``delay`` seconds (default 10), then answers as ``rotate``
* ``error``: 500; ``unavailable``: 503 with ``Retry-After: 1``
* ``malformed``: a feed cut off mid-element; ``empty``: an empty body
* ``huge``: a synthetic feed of ``zones`` zones (default 100,000), streamed

``POST /_reset`` restarts the rotation. ``python -m junction.emulators.provider`` serves it
on its own.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

XML = "application/xml"
MODES = ("rotate", "fixed", "slow", "error", "unavailable", "malformed", "empty", "huge")
FIXTURES = ("response_1.xml", "response_2.xml", "response_3.xml")


def fixture(name: str) -> bytes:
    return resources.files("junction.emulators").joinpath("fixtures", "provider", name).read_bytes()


def synthetic_feed(
    zones: int, zones_per_slot: int = 10, slots_per_event: int = 5
) -> Iterator[bytes]:
    """A well-formed eventList feed of exactly ``zones`` zones, generated as it is sent."""
    yield b'<?xml version="1.0" encoding="UTF-8"?>\n<eventList version="1.0"><output>\n'
    written = 0
    event_id = 0
    while written < zones:
        event_id += 1
        parts = [
            f'<base_event base_event_id="{event_id}" sell_mode="online" '
            f'organizer_company_id="{event_id % 7}" title="Synthetic event {event_id}">'
        ]
        for slot in range(slots_per_event):
            if written >= zones:
                break
            day = 1 + (event_id + slot) % 28
            parts.append(
                f'<event event_start_date="2030-03-{day:02d}T20:00:00" '
                f'event_end_date="2030-03-{day:02d}T22:00:00" event_id="{slot + 1}" '
                f'sell_from="2030-01-01T00:00:00" sell_to="2030-03-{day:02d}T19:00:00" '
                'sold_out="false">'
            )
            for zone in range(min(zones_per_slot, zones - written)):
                parts.append(
                    f'<zone zone_id="{zone + 1}" capacity="{(zone * 37) % 500}" '
                    f'price="{10 + zone}.50" name="Zone {zone + 1}" numbered="true"/>'
                )
                written += 1
            parts.append("</event>")
        parts.append("</base_event>\n")
        yield "".join(parts).encode()
    yield b"</output></eventList>\n"


@dataclass
class EmulatorState:
    mode: str = "rotate"
    delay: float = 10.0
    zones: int = 100_000
    response: str = "1"
    served: int = 0


def _rotated(state: EmulatorState) -> bytes:
    name = FIXTURES[state.served % len(FIXTURES)]
    state.served += 1
    return fixture(name)


def _fixed(response: str) -> bytes:
    if response == "plan":
        return fixture("planList_response_1.xml")
    index = int(response) - 1 if response.isdigit() else 0
    return fixture(FIXTURES[min(max(index, 0), len(FIXTURES) - 1)])


async def events_feed(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    params = request.query_params
    mode = params.get("mode", state.mode)
    if mode == "slow":
        await asyncio.sleep(float(params.get("delay", state.delay)))
        mode = "rotate"
    if mode == "error":
        return Response("internal error", status_code=500)
    if mode == "unavailable":
        return Response("try again", status_code=503, headers={"Retry-After": "1"})
    if mode == "empty":
        return Response(b"", media_type=XML)
    if mode == "malformed":
        return Response(_rotated(state)[:900], media_type=XML)
    if mode == "huge":
        zones = int(params.get("zones", state.zones))
        return StreamingResponse(synthetic_feed(zones), media_type=XML)
    if mode == "fixed":
        return Response(_fixed(params.get("response", state.response)), media_type=XML)
    return Response(_rotated(state), media_type=XML)


async def set_mode(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    try:
        body: Any = await request.json()
        mode = str(body.get("mode", state.mode))
        if mode not in MODES:
            raise ValueError(mode)
        state.mode = mode
        state.delay = float(body.get("delay", state.delay))
        state.zones = int(body.get("zones", state.zones))
        state.response = str(body.get("response", state.response))
    except (ValueError, TypeError, AttributeError):
        return JSONResponse({"errors": [f"mode must be one of {', '.join(MODES)}"]}, 422)
    return JSONResponse({"mode": state.mode, "delay": state.delay, "zones": state.zones})


async def reset(request: Request) -> Response:
    request.app.state.emulator = EmulatorState()
    return JSONResponse({"mode": "rotate"})


def create_app() -> Starlette:
    app = Starlette(
        routes=[
            Route("/api/events", events_feed, methods=["GET"]),
            Route("/_mode", set_mode, methods=["PUT"]),
            Route("/_reset", reset, methods=["POST"]),
        ]
    )
    app.state.emulator = EmulatorState()
    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
