"""Engines, sessions and the declarative base shared by every domain.

SQLite allows one writer at a time. A deferred transaction that reads first and writes
later can fail at once with "database is locked" (SQLite cannot wait for a lock it might
deadlock on), so Junction keeps a one-writer discipline:

* writes go through ``Database.write_engine``, whose transactions start with
  ``BEGIN IMMEDIATE`` (the write lock is taken up front, waited for with ``busy_timeout``),
  and whose pool holds a single connection, so writers in one process queue in the pool
  (an asyncio wait) instead of spinning on the lock;
* reads go through ``Database.read_engine`` with plain deferred transactions; in WAL mode
  they never block the writer and never wait for it.

On PostgreSQL both names point at the same pooled engine.

``run_after_commit`` runs a callback once the session's transaction has committed (and
never after a rollback): wake-ups and broadcasts must not announce a write that did not
happen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from sqlalchemy import BigInteger, DateTime, Integer, MetaData, event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from junction.platform.errors import JunctionError, ServiceUnavailable, ValidationFailed
from junction.settings import Settings

log = structlog.get_logger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# SQLite only makes INTEGER PRIMARY KEY an alias of its rowid (auto-increment).
RowId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


_AFTER_COMMIT = "junction.after_commit"
_GATHERED = "junction.after_commit.gathered"
_AFTER_COMMIT_ASYNC = "junction.after_commit.async"
_AFTER_ROLLBACK_ASYNC = "junction.after_rollback.async"


def run_after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Call ``callback`` after the session's current transaction commits; drop it on rollback.

    The callback runs in the event loop's thread, so it may set an ``asyncio.Event``; it
    must not block. A savepoint rolled back inside a committed transaction does not drop
    it, so a callback should tolerate running when nothing it waited for happened.
    """
    session.sync_session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def await_after_commit(session: AsyncSession, callback: Callable[[], Awaitable[Any]]) -> None:
    """Await ``callback`` once the transaction of ``Database.transaction()`` (a request's
    ``DbSession``, a job's unit of work) has committed, before that block ends: a client
    answered after the commit already sees its effect (a cache invalidated, say). A
    rollback drops it; a failure is logged, never raised, as the write has landed."""
    session.sync_session.info.setdefault(_AFTER_COMMIT_ASYNC, []).append(callback)


def await_after_rollback(session: AsyncSession, callback: Callable[[], Awaitable[Any]]) -> None:
    """Await ``callback`` if the transaction of ``Database.transaction()`` rolls back,
    its commit included (undo what lives outside the database, such as a stored file); a
    commit drops it. A failure is logged; the unit of work's own error is what is raised."""
    session.sync_session.info.setdefault(_AFTER_ROLLBACK_ASYNC, []).append(callback)


def pending_after_commit(
    session: AsyncSession, key: str, flush: Callable[[list[Any]], None]
) -> list[Any]:
    """The list ``key`` of the session's current transaction, to append to: ``flush`` gets
    everything appended, once, after the transaction commits; a rollback drops it all.

    For work a transaction gathers and hands on together (its broadcasts, one publish).
    """
    gathered: dict[str, list[Any]] = session.sync_session.info.setdefault(_GATHERED, {})
    items = gathered.get(key)
    if items is None:
        items = gathered[key] = []
        run_after_commit(session, lambda: flush(gathered.pop(key, [])))
    return items


@event.listens_for(Session, "after_commit")
def _run_after_commit_callbacks(session: Session) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, ()):
        try:
            callback()
        except Exception:
            log.exception("after-commit callback failed")


@event.listens_for(Session, "after_rollback")
def _drop_after_commit_callbacks(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_AFTER_COMMIT, None)
        session.info.pop(_GATHERED, None)
        session.info.pop(_AFTER_COMMIT_ASYNC, None)


# Seconds a pooled PostgreSQL connection may sit idle and still be used without a ping.
PING_AFTER_IDLE = 1.0
_CHECKED_IN_AT = "junction_checked_in_at"


class Database:
    """The engines and session factories of one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.is_sqlite = settings.is_sqlite
        if self.is_sqlite:
            self.write_engine = _sqlite_engine(settings, immediate=True)
            self.read_engine = _sqlite_engine(settings, immediate=False)
        else:
            self.write_engine = self.read_engine = _postgres_engine(settings)
        self.write_sessions = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write session that commits once when the block ends, or rolls back; then
        what ``await_after_commit`` or ``await_after_rollback`` registered. A lost or
        refused connection to the database becomes ``ServiceUnavailable`` (503)."""
        try:
            async with self.write_sessions() as session:
                info = session.sync_session.info
                try:
                    async with session.begin():
                        yield session
                except BaseException:
                    await _await_each(info.pop(_AFTER_ROLLBACK_ASYNC, ()), "after-rollback")
                    raise
                info.pop(_AFTER_ROLLBACK_ASYNC, None)
                await _await_each(info.pop(_AFTER_COMMIT_ASYNC, ()), "after-commit")
        except Exception as exc:
            _raise_if_unavailable(exc)
            raise

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        try:
            async with self.read_sessions() as session:
                yield session
        except Exception as exc:
            _raise_if_unavailable(exc)
            raise

    async def ping(self) -> None:
        async with self.read_engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def wait_until_reachable(self, attempts: int, first_delay: float = 0.5) -> None:
        """Retry the first connection with exponential backoff, logging each attempt."""
        delay = first_delay
        for attempt in range(1, attempts + 1):
            try:
                await self.ping()
            except Exception as exc:
                if attempt == attempts:
                    raise
                log.warning(
                    "database unreachable, retrying",
                    attempt=attempt,
                    attempts=attempts,
                    retry_in_seconds=round(delay, 2),
                    error=str(exc),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                log.info("database reachable", attempt=attempt)
                return

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


def _postgres_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
        pool_recycle=1800,
        # The most recently used connection first: at light load requests reuse the few
        # connections whose prepared statements are warm (each has its own) instead of
        # cycling through the pool, where a first use costs a prepare: two web processes
        # answered a lone message create in 34 to 48 ms (median) until every connection
        # had been used, 10 ms with this.
        pool_use_lifo=True,
        connect_args={
            "server_settings": {
                "statement_timeout": str(settings.database_statement_timeout_ms),
                "timezone": "UTC",
                "application_name": "junction",
            }
        },
    )
    _ping_connections_idle_a_while(engine)
    return engine


def _ping_connections_idle_a_while(engine: AsyncEngine) -> None:
    """Ping a pooled connection on checkout only when it sat idle past ``PING_AFTER_IDLE``.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: three round trips on asyncpg
    (BEGIN, the ping, ROLLBACK), more than a batch of message creates makes itself. A
    connection checked in moments ago is as alive as one in use: the same bypass window
    as HikariCP's (``aliveBypassWindowMs``). A dead connection found by the ping is
    replaced, with every pooled connection older than it, as pre-ping does; one that dies
    inside the window fails its first statement, as one in use would, and that failure
    invalidates the pool too.
    """
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(
        dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _: Any
    ) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        # A connection just opened has not been checked in yet: it needs no ping.
        if checked_in_at is None or time.monotonic() - checked_in_at < PING_AFTER_IDLE:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                raise InvalidatePoolError() from exc
            raise


def _sqlite_engine(settings: Settings, *, immediate: bool) -> AsyncEngine:
    path = settings.sqlite_path
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        settings.database_url,
        pool_size=1 if immediate else max(settings.database_pool_size, 1),
        max_overflow=0 if immediate else settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
    )
    busy_timeout_ms = settings.sqlite_busy_timeout_ms
    synchronous = settings.sqlite_synchronous.value
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
        # The driver's own transaction handling would hide BEGIN from us.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


# SQLSTATE classes of a connection that is gone or refused: 08 (connection exception) and
# 57P01-57P03 (the server shutting down, crashing or starting up).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03")
RETRY_AFTER_SECONDS = 2


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database cannot be reached now, as
    opposed to refusing the statement."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, OSError | SQLAlchemyTimeoutError):
            return True
        state = str(getattr(current, "sqlstate", "") or "")
        if state.startswith(_UNAVAILABLE_STATES):
            return True
        if type(current).__name__ in ("ConnectionDoesNotExistError", "InterfaceError") and (
            "connection" in str(current).lower() and "closed" in str(current).lower()
        ):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def _sqlstate(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None)
    return str(getattr(cause, "sqlstate", "") or getattr(cause, "pgcode", "") or "")


def _raise_if_unavailable(exc: Exception) -> None:
    """A lost database becomes 503; a value the database cannot store (SQLSTATE class 22:
    a NUL character in text, a number out of range) a 422 rather than a 500."""
    if isinstance(exc, JunctionError):
        return
    if database_unavailable(exc):
        raise ServiceUnavailable(
            "The database is unavailable; try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from exc
    if isinstance(exc, DBAPIError) and _sqlstate(exc).startswith("22"):
        raise ValidationFailed(
            "A value in the request cannot be stored (a NUL character, or a number or date "
            "out of range)"
        ) from exc


async def _await_each(callbacks: Iterable[Callable[[], Awaitable[Any]]], when: str) -> None:
    for callback in callbacks:
        try:
            await callback()
        except Exception:
            log.exception(f"{when} callback failed")


def database_of(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def _write_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with database_of(request).transaction() as session:
        yield session


async def _read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with database_of(request).reading() as session:
        yield session


# scope="function": the commit happens before the response is sent, so a client never
# sees a success for a write that then fails to commit.
DbSession = Annotated[AsyncSession, Depends(_write_session, scope="function")]
ReadSession = Annotated[AsyncSession, Depends(_read_session, scope="function")]
