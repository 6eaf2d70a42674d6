"""Where an integration finds its emulator in demo mode: mounted in this very app."""

from __future__ import annotations

from junction.settings import Settings

ANY_ADDRESS = ("0.0.0.0", "::", "")  # noqa: S104 - matched, not bound


def demo_emulator_url(settings: Settings, emulator: str, path: str = "") -> str:
    """The URL of ``emulator`` as this process serves it (``junction serve --demo``)."""
    host = "127.0.0.1" if settings.host in ANY_ADDRESS else settings.host
    return f"http://{host}:{settings.port}/emulators/{emulator}{path}"
