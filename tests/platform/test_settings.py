from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from junction.cli import app as cli
from junction.settings import Settings, get_settings, mask_url, settings_reference


def test_conventional_names_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://app:s3cret@db.internal:5432/junction")
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6379/0")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://app:s3cret@db.internal:5432/junction"
    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value() == "redis://cache.internal:6379/0"


def test_prefixed_name_wins_over_conventional(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://elsewhere/x")
    monkeypatch.setenv("JUNCTION_DATABASE_URL", "sqlite:///./var/own.db")
    assert Settings().database_url == "sqlite+aiosqlite:///./var/own.db"


def test_the_former_name_of_the_redis_retry_window_is_still_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JUNCTION_CACHE_REDIS_RETRY_SECONDS", "12")
    assert Settings().redis_retry_seconds == 12
    monkeypatch.setenv("JUNCTION_REDIS_RETRY_SECONDS", "7")
    assert Settings().redis_retry_seconds == 7


def test_defaults_are_the_embedded_mode() -> None:
    settings = Settings(_env_file=None)
    assert settings.is_sqlite
    assert str(settings.sqlite_path) == "var/junction.db"
    assert settings.redis_url is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ValidationError, match="JUNCTION_SECRET_KEY"):
        Settings(env="production")
    assert Settings(env="production", secret_key="a-real-secret").env == "production"


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("postgresql://u:pw@h:5432/d") == "postgresql://u:********@h:5432/d"
    assert mask_url("redis://h:6379/0") == "redis://h:6379/0"


def test_config_command_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUNCTION_SECRET_KEY", "top-secret-value")
    monkeypatch.setenv("JUNCTION_DATABASE_URL", "postgresql://app:dbpass@db:5432/j")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["config"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "top-secret-value" not in result.output
    assert "dbpass" not in result.output
    assert "postgresql+asyncpg://app:********@db:5432/j" in result.output
    assert "JUNCTION_SECRET_KEY" in result.output


def test_every_setting_is_documented() -> None:
    undocumented = [name for name, field in Settings.model_fields.items() if not field.description]
    assert undocumented == []


def test_configuration_reference_is_current() -> None:
    page = Path(__file__).parents[2] / "docs" / "configuration.md"
    assert page.read_text() == settings_reference(), (
        "docs/configuration.md is stale: run `junction config --reference > docs/configuration.md`"
    )
