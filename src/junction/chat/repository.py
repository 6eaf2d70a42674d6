"""Every query of the chat domain."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    Row,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from junction.chat import search
from junction.chat.models import Application, Chat, Message
from junction.platform.db import UTCDateTime, utcnow
from junction.platform.sql import insert_for


async def application_by_token(session: AsyncSession, token: str) -> Application | None:
    found: Application | None = await session.scalar(
        select(Application).where(Application.token == token)
    )
    return found


async def application_id(session: AsyncSession, token: str) -> int | None:
    found: int | None = await session.scalar(
        select(Application.id).where(Application.token == token)
    )
    return found


async def add_application(session: AsyncSession, token: str, name: str) -> Application:
    application = Application(token=token, name=name)
    session.add(application)
    await session.flush()
    return application


async def chat_in(session: AsyncSession, token: str, number: int) -> Chat | None:
    found: Chat | None = await session.scalar(
        select(Chat)
        .join(Application, Application.id == Chat.application_id)
        .where(Application.token == token, Chat.number == number)
    )
    return found


async def chat_id_in(session: AsyncSession, token: str, number: int) -> int | None:
    found: int | None = await session.scalar(
        select(Chat.id)
        .join(Application, Application.id == Chat.application_id)
        .where(Application.token == token, Chat.number == number)
    )
    return found


async def chat_ids_in(
    session: AsyncSession, chats: Collection[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The ids of the chats named by (application token, chat number); absent ones left out."""
    if session.get_bind().dialect.name == "postgresql":
        tokens, numbers = [token for token, _ in chats], [number for _, number in chats]
        found = await session.execute(_CHAT_IDS_NAMED, {"token": tokens, "number": numbers})
    else:
        found = await session.execute(
            _CHAT_IDS.where(tuple_(Application.token, Chat.number).in_(list(chats)))
        )
    return {(token, number): chat_id for token, number, chat_id in found}


def _named_rows(*columns: tuple[str, Any]) -> Any:
    """Rows given column by column, as one PostgreSQL ``unnest`` of array parameters named
    as the columns: the statement's text is the same whatever the number of rows, so its
    prepared form is reused. (SQLite prepares statements in process, where a longer text
    costs next to nothing.)"""
    arrays = [bindparam(name, type_=postgresql.ARRAY(type_)) for name, type_ in columns]
    names = [name for name, _ in columns]
    return func.unnest(*arrays).table_valued(*names).render_derived(name="named")


# The statements of message creates, built once: building a statement and its cache key
# cost SQLAlchemy more CPU per batch than executing it (cProfile of the batch writer).
_CHAT_IDS = select(Application.token, Chat.number, Chat.id).join(
    Application, Application.id == Chat.application_id
)
_NAMED_CHATS = _named_rows(("token", String()), ("number", Integer()))
_CHAT_IDS_NAMED = _CHAT_IDS.join(
    _NAMED_CHATS,
    (_NAMED_CHATS.c.token == Application.token) & (_NAMED_CHATS.c.number == Chat.number),
)
_NAMED_MESSAGES = _named_rows(
    ("chat_id", BigInteger()), ("number", Integer()), ("body", Text()), ("search_text", Text())
)
_CREATED_AT = bindparam("created_at", type_=UTCDateTime())
# On the table, not the model: an ORM insert given parameters is an ORM bulk insert.
_MESSAGES = cast(Table, Message.__table__)
_INSERT_NAMED_MESSAGES = (
    postgresql.insert(_MESSAGES)
    .from_select(
        ["chat_id", "number", "body", "search_text", "created_at", "updated_at"],
        select(*_NAMED_MESSAGES.c, _CREATED_AT, _CREATED_AT),
    )
    .on_conflict_do_nothing(index_elements=["chat_id", "number"])
    .returning(_MESSAGES.c.chat_id, _MESSAGES.c.number, _MESSAGES.c.created_at)
)
# SQLite's, with the rows given at execution: SQLAlchemy cannot cache a statement that
# carries many rows' values, and compiled one for every batch.
_INSERT_MESSAGES = (
    sqlite.insert(_MESSAGES)
    .on_conflict_do_nothing(index_elements=["chat_id", "number"])
    .returning(_MESSAGES.c.chat_id, _MESSAGES.c.number, _MESSAGES.c.created_at)
)


async def insert_chat(
    session: AsyncSession, application_id: int, number: int
) -> Row[int, datetime] | None:
    """The new chat's (id, created_at), or None when ``number`` is taken."""
    now = utcnow()
    statement = (
        insert_for(session, Chat)
        .values(application_id=application_id, number=number, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["application_id", "number"])
        .returning(Chat.id, Chat.created_at)
    )
    row: Row[int, datetime] | None = (await session.execute(statement)).one_or_none()
    return row


async def insert_message(
    session: AsyncSession, chat_id: int, number: int, body: str
) -> datetime | None:
    """The new message's created_at, or None when ``number`` is taken."""
    now = utcnow()
    statement = (
        insert_for(session, Message)
        .values(
            chat_id=chat_id,
            number=number,
            body=body,
            search_text=search.fold(body),
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["chat_id", "number"])
        .returning(Message.created_at)
    )
    created_at: datetime | None = await session.scalar(statement)
    return created_at


async def insert_messages(
    session: AsyncSession, messages: Sequence[tuple[int, int, str]]
) -> dict[tuple[int, int], datetime]:
    """Insert (chat id, number, body) rows in one statement; the created_at of each
    inserted (chat id, number). A row whose number is taken is skipped."""
    if not messages:
        return {}
    now = utcnow()
    chat_ids, numbers, bodies = (list(column_) for column_ in zip(*messages, strict=True))
    folded = [search.fold(body) for body in bodies]
    if session.get_bind().dialect.name == "postgresql":
        inserted = await session.execute(
            _INSERT_NAMED_MESSAGES,
            {
                "chat_id": chat_ids,
                "number": numbers,
                "body": bodies,
                "search_text": folded,
                "created_at": now,
            },
        )
    else:
        rows = [
            {
                "chat_id": c,
                "number": n,
                "body": b,
                "search_text": f,
                "created_at": now,
                "updated_at": now,
            }
            for c, n, b, f in zip(chat_ids, numbers, bodies, folded, strict=True)
        ]
        inserted = await session.execute(_INSERT_MESSAGES, rows)
    return {(chat_id, number): created_at for chat_id, number, created_at in inserted}


async def chats_of(
    session: AsyncSession, application_id: int, offset: int, limit: int
) -> Sequence[Chat]:
    return (
        await session.scalars(
            select(Chat)
            .where(Chat.application_id == application_id)
            .order_by(Chat.number)
            .offset(offset)
            .limit(limit)
        )
    ).all()


async def messages_of(
    session: AsyncSession, chat_id: int, offset: int, limit: int
) -> Sequence[Message]:
    return (
        await session.scalars(
            select(Message)
            .where(Message.chat_id == chat_id)
            .order_by(Message.number)
            .offset(offset)
            .limit(limit)
        )
    ).all()


async def message_in(session: AsyncSession, chat_id: int, number: int) -> Message | None:
    found: Message | None = await session.scalar(
        select(Message).where(Message.chat_id == chat_id, Message.number == number)
    )
    return found


def set_message_body(message: Message, body: str) -> None:
    message.body = body
    message.search_text = search.fold(body)


async def search_messages(
    session: AsyncSession, chat_id: int, words: list[str], offset: int, limit: int
) -> Sequence[Row[int, str, datetime]]:
    """Messages of one chat matching every word as a prefix, best first."""
    query = select(Message.number, Message.body, Message.created_at).where(
        Message.chat_id == chat_id
    )
    if session.get_bind().dialect.name == "sqlite":
        condition, bm25 = search.sqlite_match(words)
        query = query.join(search.FTS_TABLE, search.FTS_TABLE.c.rowid == Message.id).where(
            condition
        )
        query = query.order_by(bm25, Message.number)
    else:
        condition, rank = search.pg_match(words)
        query = query.where(condition).order_by(rank.desc(), Message.number)
    return (await session.execute(query.offset(offset).limit(limit))).all()


async def refresh_messages_count(session: AsyncSession, chat_id: int) -> int | None:
    counted = select(func.count()).where(Message.chat_id == chat_id).scalar_subquery()
    count: int | None = await session.scalar(
        update(Chat)
        .where(Chat.id == chat_id)
        .values(messages_count=counted)
        .returning(Chat.messages_count)
    )
    return count


async def refresh_chats_count(session: AsyncSession, application_id: int) -> int | None:
    counted = select(func.count()).where(Chat.application_id == application_id).scalar_subquery()
    count: int | None = await session.scalar(
        update(Application)
        .where(Application.id == application_id)
        .values(chats_count=counted)
        .returning(Application.chats_count)
    )
    return count


async def reconcile_counts(session: AsyncSession) -> dict[str, int]:
    """Set every stored count that differs from the rows it counts; how many were off."""
    messages = (
        select(func.count()).where(Message.chat_id == Chat.id).correlate(Chat).scalar_subquery()
    )
    chats = (
        select(func.count())
        .where(Chat.application_id == Application.id)
        .correlate(Application)
        .scalar_subquery()
    )
    fixed_chats = await session.execute(
        update(Chat).where(Chat.messages_count != messages).values(messages_count=messages)
    )
    fixed_applications = await session.execute(
        update(Application).where(Application.chats_count != chats).values(chats_count=chats)
    )
    return {
        "chats_corrected": int(getattr(fixed_chats, "rowcount", 0) or 0),
        "applications_corrected": int(getattr(fixed_applications, "rowcount", 0) or 0),
    }


async def count_rows(session: AsyncSession) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, model in (("applications", Application), ("chats", Chat), ("messages", Message)):
        counts[name] = int(await session.scalar(select(func.count()).select_from(model)) or 0)
    return counts


async def delete_everything(session: AsyncSession) -> None:
    for model in (Message, Chat, Application):
        await session.execute(delete(model))


async def message_id_range(session: AsyncSession) -> tuple[int, int]:
    low, high = (await session.execute(select(func.min(Message.id), func.max(Message.id)))).one()
    return int(low or 0), int(high or 0)


async def refold_messages(session: AsyncSession, first_id: int, last_id: int) -> int:
    """Recompute ``search_text`` for the messages with ids in [first_id, last_id]."""
    rows = (
        await session.execute(
            select(Message.id, Message.body).where(Message.id.between(first_id, last_id))
        )
    ).all()
    if rows:
        await session.execute(
            update(Message),
            [{"id": row.id, "search_text": search.fold(row.body)} for row in rows],
        )
    return len(rows)


async def rebuild_search_index(session: AsyncSession) -> None:
    """Rebuild the message search index from ``search_text`` as stored."""
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(search.sqlite_rebuild())
    else:
        await session.execute(text("REINDEX INDEX ix_chat_messages_search"))


async def all_applications(session: AsyncSession) -> Sequence[Application]:
    return (await session.scalars(select(Application).order_by(Application.id))).all()


@dataclass(frozen=True)
class NumberSequence:
    """Where the numbers of one kind of row live: the parent's counter, the rows."""

    kind: str
    counter: InstrumentedAttribute[int]
    parent_id: InstrumentedAttribute[int]
    parent_key: InstrumentedAttribute[int]
    number: InstrumentedAttribute[int]


CHAT_NUMBERS = NumberSequence(
    "chats", Application.last_chat_number, Application.id, Chat.application_id, Chat.number
)
MESSAGE_NUMBERS = NumberSequence(
    "messages", Chat.last_message_number, Chat.id, Message.chat_id, Message.number
)


def _highest_stored(sequence: NumberSequence, parent_id: int) -> Any:
    return (
        select(func.coalesce(func.max(sequence.number), 0))
        .where(sequence.parent_key == parent_id)
        .scalar_subquery()
    )


def _greatest(session: AsyncSession, *values: Any) -> Any:
    # SQLite's two-argument max() is PostgreSQL's greatest().
    if session.get_bind().dialect.name == "sqlite":
        return func.max(*values)
    return func.greatest(*values)


async def database_floor(session: AsyncSession, sequence: NumberSequence, parent_id: int) -> int:
    """The highest number the database knows of: stored, or handed out by its counter."""
    floor = await session.scalar(
        select(_greatest(session, sequence.counter, _highest_stored(sequence, parent_id))).where(
            sequence.parent_id == parent_id
        )
    )
    return int(floor or 0)


async def allocate_in_database(
    session: AsyncSession, sequence: NumberSequence, parent_id: int
) -> int:
    """Raise the parent's counter past every stored number, in the caller's transaction."""
    raised = _greatest(session, sequence.counter, _highest_stored(sequence, parent_id)) + 1
    number = await session.scalar(
        update(sequence.parent_id.class_)
        .where(sequence.parent_id == parent_id)
        .values({sequence.counter: raised})
        .returning(sequence.counter)
        .execution_options(synchronize_session=False)
    )
    assert number is not None, "the parent row exists: the caller has just read it"
    return int(number)
