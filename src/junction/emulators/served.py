"""The three emulators under ``/emulators/<name>``, in the demo app or on their own.

``junction serve --demo`` mounts them in the web app; ``junction emulators`` serves the
same paths from a process of their own, so that a Compose or Kubernetes demo runs them as a
container and points separate workers at it. Each call makes fresh emulators: their state
(records written, the feed's rotation) lives in the process that serves them.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from junction.emulators import provider
from junction.emulators.airtable import create_airtable_emulator
from junction.emulators.wellness import create_wellness_emulator

MOUNT_PREFIX = "/emulators"


def emulator_mounts() -> dict[str, ASGIApp]:
    """Each emulator by the path it is served at."""
    return {
        f"{MOUNT_PREFIX}/airtable": create_airtable_emulator(),
        f"{MOUNT_PREFIX}/provider": provider.create_app(),
        f"{MOUNT_PREFIX}/wellness": create_wellness_emulator(),
    }


async def _up(request: Request) -> Response:
    return PlainTextResponse("OK")


def create_emulators_app() -> Starlette:
    """``junction emulators``: the mounts, and ``/up`` for a container's health check."""
    routes = [Mount(path, app) for path, app in emulator_mounts().items()]
    return Starlette(routes=[Route("/up", _up), *routes])
