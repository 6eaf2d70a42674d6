"""Storage settings for the tests: a fixed base URL for links, validated changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from junction.settings import Settings

PUBLIC_BASE_URL = "http://files.junction.test"


def files_under(folder: Path) -> list[Path]:
    """Every file below ``folder``, hidden partial files included."""
    return sorted(path for path in folder.rglob("*") if path.is_file())


def configured(settings: Settings, **changes: Any) -> Settings:
    """``settings`` with ``changes``, validated as if they came from the environment."""
    return Settings.model_validate(settings.model_dump() | changes)
