"""Events, slots and zones of the ticketing provider (its sync runs are the kit's
``IntegrationRun`` rows, integration ``events``).

Keys (the provider's ids are not unique on their own):

* an event is one provider *base event*, unique on ``external_id`` (``base_event_id``);
* a slot is one provider *event* (plan) **within** its base event: ``(event_id,
  external_id)``, so ``event_id`` 1642 under three base events is three slots;
* a zone belongs to one slot version and is kept as a whole row per feed entry, with its
  ``position`` in the slot: ``zone_id`` 186 twice in one slot is two zones.

History, as the seed's ``current`` flag: a slot row is one *version* of a slot with its
zones. When a slot's content hash changes, the current row is flagged ``current = false``
and a new version is written with its zones; when nothing changed, nothing is written.
``uuid`` names the slot across its versions; ``id`` names one version.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from junction.platform.db import Base, RowId, UTCDateTime, utcnow


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, default=uuid.uuid4, unique=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    sell_mode: Mapped[str] = mapped_column(String(32))
    organizer_company_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    ever_online: Mapped[bool] = mapped_column(Boolean, default=False)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    slots: Mapped[list[Slot]] = relationship(back_populates="event", lazy="raise")


class Slot(Base):
    __tablename__ = "slots"
    __table_args__ = (
        # At most one current version per slot, whatever two syncs do at once.
        Index(
            "uq_slots_current_event_id_external_id",
            "event_id",
            "external_id",
            unique=True,
            sqlite_where=text("current"),
            postgresql_where=text("current"),
        ),
        Index("ix_slots_current_range", "current", "starts_at", "ends_at"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sell_from: Mapped[datetime] = mapped_column(UTCDateTime)
    sell_to: Mapped[datetime] = mapped_column(UTCDateTime)
    sold_out: Mapped[bool] = mapped_column(Boolean)
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    event: Mapped[Event] = relationship(back_populates="slots", lazy="raise")
    zones: Mapped[list[Zone]] = relationship(
        back_populates="slot", lazy="raise", order_by="Zone.position"
    )


class Zone(Base):
    __tablename__ = "zones"
    __table_args__ = (Index("uq_zones_slot_id_position", "slot_id", "position", unique=True),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, default=uuid.uuid4, unique=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    external_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(500))
    capacity: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2, asdecimal=True))
    numbered: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    slot: Mapped[Slot] = relationship(back_populates="zones", lazy="raise")
