"""The console's own table: the audit log of every action an operator took."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from junction.platform.db import Base, RowId, UTCDateTime, utcnow


class AuditEntry(Base):
    """Who did what, when, and how it ended. A bulk action's entry also carries its progress,
    which the background job that carries it out keeps up to date."""

    __tablename__ = "console_audit"
    __table_args__ = (Index("ix_console_audit_at", "at"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    key_id: Mapped[str] = mapped_column(String(16))
    key_name: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(500))
    result: Mapped[str] = mapped_column(String(16))
    """``ok``, ``refused`` or ``failed``; ``running`` while a bulk action goes on."""
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer, default=None)
    parameters: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)
