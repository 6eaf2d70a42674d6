"""Junction's settings, read from the environment (``JUNCTION_`` prefix).

Conventional names are accepted too where an ecosystem has one (``DATABASE_URL``,
``REDIS_URL``). Every setting has a safe default for the embedded mode; production mode
refuses to start while a secret still has its development default.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEVELOPMENT_SECRET_KEY = "junction-development-secret-key-change-me"  # noqa: S105
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/junction.db"


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class SqliteSynchronous(StrEnum):
    """FULL survives power loss; NORMAL (in WAL mode) survives any process crash."""

    full = "FULL"
    normal = "NORMAL"


class StorageBackend(StrEnum):
    local = "local"
    s3 = "s3"


class LogFormat(StrEnum):
    auto = "auto"
    json = "json"
    console = "console"


def _env_alias(name: str, *conventional: str) -> AliasChoices:
    return AliasChoices(f"JUNCTION_{name.upper()}", *conventional)


def normalize_database_url(url: str) -> str:
    """Give a plain ``postgres://`` or ``sqlite://`` URL its async driver."""
    for prefix, driver in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(prefix):
            return driver + url.removeprefix(prefix)
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JUNCTION_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        use_attribute_docstrings=True,
    )

    env: Environment = Environment.development
    """`development`, `test` or `production` (refuses the default secret key, logs JSON)."""
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET_KEY)
    """Signs capability tokens (job status links); must be set in production."""
    host: str = "127.0.0.1"
    """Interface `junction serve` binds (and the emulators' address in demo mode)."""
    port: int = Field(default=8000, ge=1, le=65535)
    """Port `junction serve` listens on."""
    shutdown_grace_seconds: float = Field(
        default=30.0, gt=0, description="How long in-flight work may finish after SIGTERM."
    )
    event_loop: Literal["asyncio", "uvloop"] = "asyncio"
    """Event loop of `junction serve`. uvloop gives no more requests a second here and,
    once the server is saturated, leaves some requests waiting up to 0.4 s."""

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=_env_alias("database_url", "DATABASE_URL"),
    )
    """SQLAlchemy URL; plain `postgres://` and `sqlite://` URLs get their async driver."""
    database_pool_size: int = Field(default=10, ge=1)
    """PostgreSQL connections kept open per process (SQLite readers too)."""
    database_max_overflow: int = Field(default=10, ge=0)
    """Extra connections allowed above the pool size under load."""
    database_pool_timeout_seconds: float = Field(default=30.0, gt=0)
    """How long a request waits for a free connection."""
    database_statement_timeout_ms: int = Field(default=30_000, ge=0)
    """PostgreSQL `statement_timeout`; 0 disables it."""
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    """How long SQLite waits for another process's write lock."""
    sqlite_synchronous: SqliteSynchronous = SqliteSynchronous.full
    """`FULL` survives power loss; `NORMAL` (WAL) survives any process crash."""
    database_startup_attempts: int = Field(default=30, ge=1)
    """Connection attempts at start, with exponential backoff up to 10 s."""
    migrate_on_start: bool = True
    """`junction serve` applies pending migrations before it reports ready."""
    seed_on_start: bool = Field(
        default=False,
        description="After the migrations, `junction migrate` (and `junction serve` when it "
        "migrates) loads the sample chat data into a database that has never been seeded, "
        "once: a restart, or the data deleted, never seeds again. Demo mode implies it.",
    )

    redis_url: SecretStr | None = Field(
        default=None, validation_alias=_env_alias("redis_url", "REDIS_URL")
    )
    """Enables the shared cache, rate limits, live-channel pub/sub and chat counters."""
    redis_max_connections: int = Field(default=100, ge=2)
    """Redis connections per process and client; past it, a command waits for a free one."""
    redis_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long a command waits for a free Redis connection before it fails."""

    realtime_max_connections: int = Field(
        default=10_000, ge=1, description="Live connections (/cable and SSE) per web process."
    )
    realtime_send_queue_size: int = Field(
        default=256, ge=1, description="Frames queued for one client before it is dropped."
    )
    realtime_ping_interval_seconds: float = Field(default=3.0, gt=0)
    """Action Cable ping interval."""
    realtime_replay_buffer_size: int = Field(
        default=1_000, ge=1, description="Messages kept per stream for SSE resume."
    )
    realtime_replay_ttl_seconds: int = Field(
        default=86_400, ge=1, description="A quiet stream's replay buffer expires (Redis)."
    )

    demo: bool = Field(
        default=False,
        description="Mount the emulators under /emulators/<name> and point the integrations "
        "whose base URL is unset at them (`junction serve --demo`); on first start, also "
        "load the sample chat data and create a demo user.",
    )

    wellness_api_url: str | None = Field(
        default=None,
        validation_alias=_env_alias("wellness_api_url", "MOCK_API_URL"),
        description="Base URL of the wellness API that clients and appointments come from.",
    )
    wellness_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env_alias("wellness_api_key", "MOCK_API_KEY")
    )
    """API key sent to the wellness API."""
    wellness_api_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias=_env_alias("wellness_api_timeout_seconds", "EXTERNAL_API_TIMEOUT"),
    )
    """Timeout of each call to the wellness API."""
    wellness_api_retry_attempts: int = Field(
        default=3,
        ge=0,
        validation_alias=_env_alias("wellness_api_retry_attempts", "EXTERNAL_API_RETRY_ATTEMPTS"),
        description="Retries after a failed call (429, 5xx, timeout), on top of the first try.",
    )
    wellness_api_backoff_seconds: float = Field(default=1.0, gt=0)
    """First retry delay of the wellness API client (doubles, with jitter)."""
    wellness_api_timezone: str = Field(
        default="UTC", description="Time zone of upstream times sent without an offset."
    )
    wellness_page_size: int = Field(default=500, ge=1, le=1000)
    """Records asked for per page."""
    wellness_incremental: bool = Field(
        default=True, description="Fetch only changes (updated_since) once a cursor exists."
    )
    wellness_clients_cron: str = "0 */6 * * *"
    """When clients are synced (cron, UTC)."""
    wellness_appointments_cron: str = "0 */2 * * *"
    """When appointments are synced (cron, UTC)."""
    wellness_sync_lease_seconds: float = Field(
        default=300.0, gt=0, description="A sync that stops heartbeating this long is taken over."
    )

    provider_url: str | None = Field(
        default=None,
        description="URL of the ticketing provider's XML feed (`GET`); unset in demo mode "
        "means the provider emulator.",
    )
    provider_timezone: str = Field(
        default="UTC",
        description="Time zone of the provider's times, which carry no offset; stored as UTC.",
    )
    provider_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """Connect timeout of the provider feed fetch."""
    provider_read_timeout_seconds: float = Field(default=30.0, gt=0)
    """Read timeout of the provider feed fetch."""
    provider_attempts: int = Field(default=4, ge=1, description="Tries per fetch, with backoff.")
    provider_max_feed_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="A larger feed is refused unread."
    )
    events_sync_interval_seconds: float = Field(default=300.0, gt=0)
    """How often the provider feed is pulled."""
    events_sync_first_run_seconds: float = Field(
        default=5.0, ge=0, description="The first sync runs this long after the scheduler starts."
    )
    events_max_per_page: int = Field(default=100, ge=1)
    """Largest `per_page` the events API accepts."""
    events_cache_version_check_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How often a web process checks the database for newly synced data.",
    )
    events_http_max_age_seconds: int = Field(
        default=60, ge=0, description="Cache-Control max-age of the events API."
    )

    cache_ttl_seconds: float = Field(default=3600.0, gt=0)
    """Lifetime of a cached response."""
    cache_max_entries: int = Field(default=100, ge=1, description="In-process LRU size.")
    redis_retry_seconds: float = Field(
        default=5.0,
        gt=0,
        validation_alias=_env_alias("redis_retry_seconds", "JUNCTION_CACHE_REDIS_RETRY_SECONDS"),
    )
    """After Redis fails, the cache and the rate limits use per-process memory this long
    before they try it again (also read from its former name,
    `JUNCTION_CACHE_REDIS_RETRY_SECONDS`)."""

    storage_backend: StorageBackend = StorageBackend.local
    """Where uploaded files live: `local` (a folder) or `s3` (S3 or an S3-compatible store)."""
    storage_path: Path = Path("./var/files")
    """Folder of the local storage backend."""
    s3_bucket: str | None = Field(
        default=None, validation_alias=_env_alias("s3_bucket", "AWS_S3_BUCKET", "S3_BUCKET")
    )
    """Bucket of the S3 storage backend."""
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias=_env_alias("s3_endpoint_url", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        description="Endpoint of an S3-compatible store (MinIO, Ceph, moto); unset means AWS.",
    )
    s3_region: str = Field(
        default="us-east-1",
        validation_alias=_env_alias("s3_region", "AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    """Region the S3 requests and presigned URLs are signed for."""
    s3_path_style: bool | None = Field(
        default=None,
        description="Path-style S3 URLs (`endpoint/bucket/key`); unset means path-style "
        "exactly when an endpoint URL is set.",
    )
    aws_access_key_id: SecretStr | None = Field(
        default=None, validation_alias=_env_alias("aws_access_key_id", "AWS_ACCESS_KEY_ID")
    )
    """S3 access key; unset means the AWS SDK's usual chain (profile, instance role)."""
    aws_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=_env_alias("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    )
    """S3 secret key."""
    upload_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    """Largest file accepted; a larger upload is refused with 413 and nothing is kept."""
    upload_allowed_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "image/jpeg",
            "image/png",
            "image/gif",
            "image/webp",
            "application/pdf",
        ],
        description="Media types an upload may have; the content must match the declared type.",
    )
    file_url_ttl_seconds: int = Field(default=3600, ge=1, le=604_800)
    """Lifetime of a download URL given to API clients (S3 allows at most 7 days)."""
    public_base_url: str | None = Field(
        default=None,
        description="Base URL others reach this service at, for signed file links "
        "(Airtable fetches attachments from it); unset means `http://host:port`.",
    )

    airtable_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env_alias("airtable_api_key", "AIRTABLE_API_KEY")
    )
    """Airtable personal access token; with a base id it turns the user sync on."""
    airtable_base_id: str | None = Field(
        default=None, validation_alias=_env_alias("airtable_base_id", "AIRTABLE_BASE_ID")
    )
    """Airtable base (`app...`) that holds the users table."""
    airtable_table: str = Field(
        default="Users", validation_alias=_env_alias("airtable_table", "AIRTABLE_TABLE_NAME")
    )
    """Name or id of the Airtable table users are written to."""
    airtable_endpoint_url: str | None = Field(
        default=None,
        description="Airtable API base URL; unset means https://api.airtable.com "
        "(or the emulator in demo mode).",
    )
    airtable_requests_per_second: float = Field(default=4.5, gt=0, le=5)
    """Requests per second per base; Airtable's limit is 5, with a 30 s penalty for more."""
    airtable_batch_size: int = Field(default=10, ge=1, le=10)
    """Records written per request when many users wait (Airtable allows 10)."""
    airtable_timeout_seconds: float = Field(default=15.0, gt=0)
    """Timeout of each Airtable request."""
    airtable_rate_limit_wait_seconds: float = Field(
        default=30.0, ge=0, description="Wait after a 429 before calling Airtable again."
    )
    airtable_file_url_ttl_seconds: int = Field(default=86_400, ge=60, le=604_800)
    """Lifetime of the file URL sent to Airtable, which fetches attachments asynchronously."""

    log_level: str = "INFO"
    """`DEBUG`, `INFO`, `WARNING` or `ERROR`."""
    log_format: LogFormat = LogFormat.auto
    """`json`, `console`, or `auto` (JSON in production)."""

    max_request_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Larger request bodies are refused with 413."""
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins (https://app.example.com) whose browser pages may call the API; "
        "empty (the default) turns CORS off. Comma-separated.",
    )
    cors_allow_credentials: bool = Field(
        default=False, description="Whether those origins may send cookies and auth headers."
    )
    cors_max_age_seconds: int = Field(
        default=600, ge=0, description="How long a browser may keep a preflight's answer."
    )
    rate_limits: dict[str, str] = Field(
        default_factory=lambda: {
            "default": "600/minute",
            "write": "120/minute",
            "user_create": "300/minute",
            "user_upload": "60/minute",
        },
        description="Limits per route group and caller, in the `limits` library's notation; "
        "a group without an entry uses `default`.",
    )

    run_embedded_worker: bool = Field(
        default=True, description="`junction serve` also runs a job worker and the scheduler."
    )
    job_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Modules imported at start that register job handlers and schedules.",
    )
    job_queues: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["sync", "default"],
        description="Queues a worker serves, highest priority first; `name:N` sets concurrency.",
    )
    job_concurrency: int = Field(default=5, ge=1, description="Jobs run at once, per queue.")
    job_lease_seconds: float = Field(default=30.0, gt=0)
    """A running job whose worker stops heartbeating this long is run again."""
    job_heartbeat_seconds: float = Field(default=5.0, gt=0)
    """How often a worker renews its jobs' leases."""
    job_poll_seconds: float = Field(default=1.0, gt=0, description="Fallback poll interval.")
    job_retention_days: float = Field(
        default=7.0,
        gt=0,
        description="Days finished jobs are kept, unless their job says less or more.",
    )
    job_prune_interval_seconds: float = Field(default=3600.0, gt=0)
    """How often finished jobs past their retention are deleted."""
    job_metrics_refresh_seconds: float = Field(default=15.0, gt=0)
    """How often queue depths for /metrics are read."""
    job_minutes_retention_days: float = Field(
        default=30.0,
        gt=0,
        description="Days the per-minute counts of finished jobs (the console's charts) are kept.",
    )
    console_session_hours: float = Field(
        default=8.0, gt=0, le=24 * 30, description="How long a console login lasts."
    )
    console_masked_keys: list[str] = Field(
        default=["password", "secret", "token", "api_key", "authorization", "email"],
        description="Payload keys whose values the console shows masked (any depth, any case).",
    )

    @field_validator(
        "job_modules",
        "job_queues",
        "upload_allowed_types",
        "console_masked_keys",
        "cors_allow_origins",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> Settings:
        if self.job_heartbeat_seconds >= self.job_lease_seconds:
            raise ValueError("job_heartbeat_seconds must be shorter than job_lease_seconds")
        return self

    @field_validator("wellness_clients_cron", "wellness_appointments_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(f"invalid cron expression: {value!r}")
        return value

    @field_validator("wellness_api_timezone", "provider_timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone: {value!r}") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_has_async_driver(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_redis_url_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Settings:
        if self.env is Environment.production and (
            self.secret_key.get_secret_value() == DEVELOPMENT_SECRET_KEY
        ):
            raise ValueError(
                "JUNCTION_SECRET_KEY still has its development default; "
                "set a secret of your own before running in production"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[1]
        return None if path in ("", ":memory:") else Path(path)

    @property
    def loads_sample_data(self) -> bool:
        return self.seed_on_start or self.demo

    @property
    def json_logs(self) -> bool:
        if self.log_format is LogFormat.auto:
            return self.env is Environment.production
        return self.log_format is LogFormat.json

    def masked(self) -> dict[str, Any]:
        """The effective settings, secrets and URL passwords masked, for display."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                value = mask_url(value.get_secret_value()) if "url" in name else "********"
            elif isinstance(value, str) and "url" in name:
                value = mask_url(value)
            shown[name] = value
        return shown


def mask_url(url: str) -> str:
    """Hide the password in ``scheme://user:password@host``."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:********@{host}"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_reference() -> str:
    """Every setting as a Markdown table: docs/configuration.md is this text."""
    lines = [
        "# Configuration",
        "",
        "Every setting comes from the environment (or a `.env` file in the working directory).",
        "This page is generated by `junction config --reference`; a test keeps it current.",
        "",
        "| environment variable | default | meaning |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        names = [f"JUNCTION_{name.upper()}"]
        if isinstance(field.validation_alias, AliasChoices):
            names = [str(choice) for choice in field.validation_alias.choices]
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            default = "(a development value)"
        shown = "unset" if default is None else f"`{_plain(default)}`"
        meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {' / '.join(f'`{n}`' for n in names)} | {shown} | {meaning} |")
    return "\n".join(lines) + "\n"


def _plain(value: Any) -> str:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)
