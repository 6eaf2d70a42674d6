"""The provider's XML feed, parsed as a stream into typed value objects.

Both formats are read: ``eventList / base_event / event / zone`` and the newer
``planList / base_plan / plan / zone`` (``plan_start_date``, ``plan_id``, ...).

The feed comes from outside and is hostile until checked. lxml's ``iterparse`` runs with
entity resolution, DTD loading and network access off and ``huge_tree`` off, and any
document that declares a DOCTYPE is refused outright (the feed has no use for one, and a
DOCTYPE is where entity bombs and external entities live). lxml is used rather than
defusedxml because defusedxml's lxml support is deprecated; these options are the same
protections, stated where they are used. The caller limits the byte size.

Each base event is yielded once its closing tag is read and its element is then freed, so
memory stays flat in the size of the feed. A bad record is yielded as a ``SkippedRecord``
(the rest lands); a malformed or empty document raises ``FeedError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import IO

from lxml import etree

MAX_REASON_LENGTH = 300


class FeedError(Exception):
    """The document as a whole cannot be used: nothing from it is stored."""


class BadRecord(ValueError):
    """One record cannot be used; it is skipped and reported."""


@dataclass(frozen=True, slots=True)
class FeedZone:
    external_id: str
    name: str
    capacity: int
    price: Decimal
    numbered: bool


@dataclass(frozen=True, slots=True)
class FeedSlot:
    external_id: str
    starts_at: datetime
    ends_at: datetime
    sell_from: datetime
    sell_to: datetime
    sold_out: bool
    zones: tuple[FeedZone, ...]


@dataclass(frozen=True, slots=True)
class FeedEvent:
    external_id: str
    title: str
    sell_mode: str
    organizer_company_id: int | None
    slots: tuple[FeedSlot, ...]
    skipped: tuple[SkippedRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    kind: str
    external_id: str | None
    line: int | None
    reason: str
    parent: str | None = None

    def describe(self) -> str:
        name = f"{self.kind} {self.external_id}" if self.external_id else f"a {self.kind}"
        if self.parent:
            name += f" of {self.parent}"
        where = f" (line {self.line})" if self.line else ""
        return f"{name}{where} skipped: {self.reason}"[:MAX_REASON_LENGTH]


@dataclass(frozen=True)
class FeedFormat:
    root: str
    event_tag: str
    event_id: str
    slot_tag: str
    slot_id: str
    starts_at: str
    ends_at: str


FORMATS = {
    "eventList": FeedFormat(
        "eventList", "base_event", "base_event_id", "event", "event_id",
        "event_start_date", "event_end_date",
    ),
    "planList": FeedFormat(
        "planList", "base_plan", "base_plan_id", "plan", "plan_id",
        "plan_start_date", "plan_end_date",
    ),
}  # fmt: skip

FeedItem = FeedEvent | SkippedRecord


def parse_feed(source: IO[bytes], zone: tzinfo = UTC) -> Iterator[FeedItem]:
    """Yield each base event (or the reason it was skipped) in document order."""
    parser = etree.iterparse(
        source,
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    feed_format: FeedFormat | None = None
    try:
        for action, element in parser:
            if feed_format is None:
                feed_format = _detect_format(element)
            if action == "end" and element.tag == feed_format.event_tag:
                yield _read_event(element, feed_format, zone)
                _free(element)
    except etree.XMLSyntaxError as exc:
        raise FeedError(f"the feed is not well-formed XML: {exc}") from None
    if feed_format is None:
        raise FeedError("the feed is empty")


def _detect_format(root: etree._Element) -> FeedFormat:
    doctype = root.getroottree().docinfo.doctype
    if doctype:
        raise FeedError("the feed declares a DOCTYPE, which is refused")
    tag = root.tag if isinstance(root.tag, str) else repr(root.tag)
    feed_format = FORMATS.get(tag)
    if feed_format is None:
        raise FeedError(f"unknown feed root element <{tag}>")
    return feed_format


def _free(element: etree._Element) -> None:
    element.clear(keep_tail=False)
    parent = element.getparent()
    while parent is not None and element.getprevious() is not None:
        del parent[0]


def _read_event(element: etree._Element, fmt: FeedFormat, zone: tzinfo) -> FeedItem:
    external_id = element.get(fmt.event_id)
    try:
        event_id = _numeric_id(element, fmt.event_id)
        title = _required(element, "title")
        sell_mode = _required(element, "sell_mode").lower()
        organizer = element.get("organizer_company_id")
        organizer_id = None if organizer is None else _integer(organizer, "organizer_company_id")
    except BadRecord as exc:
        return SkippedRecord(fmt.event_tag, external_id, element.sourceline, str(exc))
    slots: list[FeedSlot] = []
    skipped: list[SkippedRecord] = []
    for child in element.iterchildren(fmt.slot_tag):
        try:
            slots.append(_read_slot(child, fmt, zone))
        except BadRecord as exc:
            parent = f"{fmt.event_tag} {event_id}"
            record = SkippedRecord(
                fmt.slot_tag, child.get(fmt.slot_id), child.sourceline, str(exc), parent
            )
            skipped.append(record)
    return FeedEvent(event_id, title, sell_mode, organizer_id, tuple(slots), tuple(skipped))


def _read_slot(element: etree._Element, fmt: FeedFormat, zone: tzinfo) -> FeedSlot:
    """A slot with its zones: one record, kept or skipped as a whole."""
    slot_id = _numeric_id(element, fmt.slot_id)
    starts_at = _datetime(element, fmt.starts_at, zone)
    ends_at = _datetime(element, fmt.ends_at, zone)
    if ends_at < starts_at:
        raise BadRecord(f"{fmt.ends_at} is before {fmt.starts_at}")
    return FeedSlot(
        slot_id,
        starts_at,
        ends_at,
        _datetime(element, "sell_from", zone),
        _datetime(element, "sell_to", zone),
        _boolean(element, "sold_out"),
        tuple(_read_zone(child) for child in element.iterchildren("zone")),
    )


def _read_zone(element: etree._Element) -> FeedZone:
    try:
        return FeedZone(
            _numeric_id(element, "zone_id"),
            _required(element, "name"),
            _integer(_required(element, "capacity"), "capacity", minimum=0),
            _decimal(_required(element, "price"), "price"),
            _boolean(element, "numbered"),
        )
    except BadRecord as exc:
        raise BadRecord(f"zone {element.get('zone_id') or '?'}: {exc}") from None


def _required(element: etree._Element, name: str) -> str:
    value = element.get(name)
    if value is None or not value.strip():
        raise BadRecord(f"{name} is missing")
    return value.strip()


def _numeric_id(element: etree._Element, name: str) -> str:
    value = _required(element, name)
    if not value.isascii() or not value.isdigit():
        raise BadRecord(f"{name} {value!r} is not numeric")
    return str(int(value))


def _integer(value: str, name: str, minimum: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadRecord(f"{name} {value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise BadRecord(f"{name} {value!r} is below {minimum}")
    return number


def _decimal(value: str, name: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise BadRecord(f"{name} {value!r} is not a decimal number") from None
    if not number.is_finite() or number < 0 or number >= Decimal("1e10"):
        raise BadRecord(f"{name} {value!r} is out of range")
    return number.quantize(Decimal("0.01"))


def _boolean(element: etree._Element, name: str) -> bool:
    value = _required(element, name).lower()
    if value not in ("true", "false"):
        raise BadRecord(f"{name} {value!r} is not true or false")
    return value == "true"


def _datetime(element: etree._Element, name: str, zone: tzinfo) -> datetime:
    """A provider time (no offset) read in the provider's zone, returned in UTC."""
    value = _required(element, name)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRecord(f"{name} {value!r} is not a valid date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)
