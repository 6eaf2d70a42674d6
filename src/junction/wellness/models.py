"""Clients and appointments pulled from the wellness API, and the bookkeeping of the sync.

Both synced tables carry the seed's sync fields (``external_id``, ``last_synced_at``,
``sync_status``, ``sync_errors``) plus ``content_hash`` (to count unchanged records without
rewriting them) and ``deleted_at`` (a record deleted upstream is kept, marked, not live).

``wellness_sync_state`` holds, per kind, the incremental cursor. The run history, the
records set aside and the lease of the run in progress are the sync kit's
(``junction.platform.integrations``), under the integration name ``wellness``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from junction.platform.db import Base, RowId, UTCDateTime, utcnow


class SyncKind(StrEnum):
    clients = "clients"
    appointments = "appointments"


class SyncStatus(StrEnum):
    """A record's state. ``pending``: known only as an appointment's client, not yet fetched
    itself; ``error``: upstream's latest version was refused (see ``sync_errors``), the last
    good data is kept; ``syncing`` is reported per kind while a run is in progress."""

    pending = "pending"
    syncing = "syncing"
    synced = "synced"
    error = "error"


class RunMode(StrEnum):
    full = "full"
    incremental = "incremental"


class SyncedRecord:
    """The columns both synced tables share."""

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    content_hash: Mapped[str | None] = mapped_column(String(32), default=None)
    upstream_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    sync_status: Mapped[str] = mapped_column(String(16), default=SyncStatus.pending.value)
    sync_errors: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Client(SyncedRecord, Base):
    __tablename__ = "wellness_clients"

    first_name: Mapped[str | None] = mapped_column(String(200), default=None)
    last_name: Mapped[str | None] = mapped_column(String(200), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    phone: Mapped[str | None] = mapped_column(String(64), default=None)

    __table_args__ = (
        Index("ix_wellness_clients_sync_status", "sync_status"),
        Index("ix_wellness_clients_upstream_updated_at", "upstream_updated_at"),
    )


class Appointment(SyncedRecord, Base):
    __tablename__ = "wellness_appointments"

    client_id: Mapped[int] = mapped_column(RowId, ForeignKey("wellness_clients.id"))
    client_external_id: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    status: Mapped[str | None] = mapped_column(String(32), default=None)
    service: Mapped[str | None] = mapped_column(String(200), default=None)
    notes: Mapped[str | None] = mapped_column(Text, default=None)

    __table_args__ = (
        Index("ix_wellness_appointments_client_id", "client_id"),
        Index("ix_wellness_appointments_starts_at", "starts_at"),
        Index("ix_wellness_appointments_sync_status", "sync_status"),
    )


class SyncState(Base):
    """Per kind: the cursor of the last committed run."""

    __tablename__ = "wellness_sync_state"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    cursor: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_full_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
