"""User profiles (seeds 000 and 003): a person, an optional file, and their Airtable sync state.

Clients know a user by ``uuid``; ``id`` stays internal. ``email_key`` is the lower-cased
email under a unique index, so uniqueness is case-insensitive on both databases.

The Airtable sync is driven by versions rather than flags: every change that Airtable must
see bumps ``sync_version``, and a sync that wrote version *v* records ``synced_version = v``.
A change made while a sync was in flight therefore stays pending instead of being marked
done by a write that did not include it. A deleted user whose record may exist in Airtable
is kept as a tombstone (``deleted_at``) until the record is deleted there too.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Date, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from junction.platform.db import Base, RowId, UTCDateTime, utcnow


class SyncStatus(StrEnum):
    """``pending``: a change waits for Airtable; ``synced``: Airtable has the latest version;
    ``retrying``: the last attempt failed and another is scheduled; ``failed``: attempts ran
    out, an operator may ask again (``POST /api/v1/users/{id}/sync``)."""

    pending = "pending"
    synced = "synced"
    retrying = "retrying"
    failed = "failed"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str | None] = mapped_column(String(320), unique=True)
    date_of_birth: Mapped[date] = mapped_column(Date)

    file_key: Mapped[str | None] = mapped_column(String(300), default=None)
    file_name: Mapped[str | None] = mapped_column(String(255), default=None)
    file_content_type: Mapped[str | None] = mapped_column(String(100), default=None)
    file_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    file_sha256: Mapped[str | None] = mapped_column(String(64), default=None)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    sync_status: Mapped[str] = mapped_column(String(16), default=SyncStatus.pending.value)
    sync_version: Mapped[int] = mapped_column(Integer, default=1)
    synced_version: Mapped[int] = mapped_column(Integer, default=0)
    sync_attempts: Mapped[int] = mapped_column(Integer, default=0)
    sync_error: Mapped[str | None] = mapped_column(Text, default=None)
    sync_next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    sync_claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    airtable_record_id: Mapped[str | None] = mapped_column(String(32), default=None)

    __table_args__ = (
        Index("ix_users_sync_status", "sync_status"),
        Index("ix_users_created_at", "created_at"),
    )

    @property
    def sync_needed(self) -> bool:
        return self.synced_version < self.sync_version
