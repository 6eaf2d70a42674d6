"""Statements whose SQL differs between PostgreSQL and SQLite, written once.

Both dialects take ``INSERT ... ON CONFLICT``, but SQLAlchemy builds it from each dialect's
own ``insert``; ``insert_for`` picks the one the session's database speaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, any_, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

Row = TypeVar("Row")
T = TypeVar("T")


def insert_for(session: AsyncSession, model: Any) -> Any:
    """``insert(model)`` of the session's dialect, with its ``on_conflict_*`` methods."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


async def locked_row(session: AsyncSession, model: type[Row], **key: Any) -> Row:
    """The row of ``model`` with this key, inserted (key only) if missing, and locked until
    the transaction ends: ``FOR UPDATE`` on PostgreSQL; SQLite has one writer at a time."""
    await session.execute(
        insert_for(session, model).values(**key).on_conflict_do_nothing(index_elements=list(key))
    )
    row = await session.scalar(
        select(model).filter_by(**key).with_for_update().execution_options(populate_existing=True)
    )
    assert row is not None
    return row


def one_of(
    session: AsyncSession, column: InstrumentedAttribute[T], values: Sequence[T]
) -> ColumnElement[bool]:
    """``column IN values``: on PostgreSQL as ``= ANY(:array)``, one parameter whatever the
    count, so the statement is prepared once; an ``IN`` of a thousand parameters was
    prepared anew for every count and took 50 ms a query."""
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    array = bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
    return column == any_(array)
