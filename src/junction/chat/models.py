"""The chat tables: applications, chats and messages.

Rows are found by what clients send (an application's token, a chat's number within its
application, a message's number within its chat); the integer ids stay inside the
service. ``last_*_number`` columns are the counters of the database numbering path (see
``numbering.py``); the unique indexes on ``(parent, number)`` are the last line of
defence against a duplicate number, whichever path allocated it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from junction.platform.db import Base, RowId, UTCDateTime, utcnow


class Application(Base):
    __tablename__ = "chat_applications"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    chats_count: Mapped[int] = mapped_column(Integer, default=0)
    last_chat_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Chat(Base):
    __tablename__ = "chats"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(
        RowId, ForeignKey("chat_applications.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    messages_count: Mapped[int] = mapped_column(Integer, default=0)
    last_message_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("application_id", "number"),)


class Message(Base):
    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(RowId, ForeignKey("chats.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    # The body folded for search (see search.py); the full-text indexes are built on it.
    search_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("chat_id", "number"),)
