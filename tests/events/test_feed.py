"""The hardened streaming parser: both formats, bad records, hostile documents."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from junction.emulators.provider import fixture, synthetic_feed
from junction.events.feed import FeedError, FeedEvent, SkippedRecord, parse_feed


def parse(document: bytes, zone: str = "UTC") -> list[FeedEvent | SkippedRecord]:
    return list(parse_feed(io.BytesIO(document), ZoneInfo(zone)))


def events(document: bytes) -> dict[str, FeedEvent]:
    return {item.external_id: item for item in parse(document) if isinstance(item, FeedEvent)}


def test_event_list_format_keeps_every_trap() -> None:
    parsed = events(fixture("response_1.xml"))
    assert set(parsed) == {"291", "322", "1591"}
    camela = parsed["291"]
    assert camela.organizer_company_id is None
    assert camela.sell_mode == "online"
    slot = camela.slots[0]
    assert slot.starts_at == datetime(2021, 6, 30, 21, tzinfo=UTC)
    assert [zone.price for zone in slot.zones] == [
        Decimal("20.00"),
        Decimal("15.00"),
        Decimal("30"),
    ]
    # event_id 1642 under two base events, zone_id 186 twice in one slot.
    assert parsed["322"].slots[0].external_id == parsed["1591"].slots[0].external_id == "1642"
    morancos = parsed["1591"].slots[0].zones
    assert [(z.external_id, z.capacity, z.numbered) for z in morancos] == [
        ("186", 2, True),
        ("186", 16, False),
    ]


def test_plan_list_format_reads_the_same_data() -> None:
    plans = events(fixture("planList_response_1.xml"))
    feed = events(fixture("response_1.xml"))
    assert set(plans) == set(feed)
    assert [slot.external_id for slot in plans["322"].slots] == ["1642", "1643"]
    assert plans["291"].slots == feed["291"].slots


def test_impossible_date_skips_the_slot_and_keeps_its_event() -> None:
    parsed = events(fixture("response_2.xml"))
    tribute = parsed["444"]
    assert tribute.sell_mode == "offline"
    assert tribute.slots == ()
    assert len(tribute.skipped) == 1
    assert "2021-09-31" in tribute.skipped[0].describe()
    assert "base_event 444" in tribute.skipped[0].describe()
    assert parsed["291"].slots
    assert parsed["1591"].slots


@pytest.mark.parametrize(
    ("zone_attributes", "problem"),
    [
        ('zone_id="1" price="10.00" name="A" numbered="true"', "capacity is missing"),
        ('zone_id="1" capacity="lots" price="10.00" name="A" numbered="true"', "not an integer"),
        ('zone_id="x1" capacity="1" price="10.00" name="A" numbered="true"', "not numeric"),
        ('zone_id="1" capacity="1" price="ten" name="A" numbered="true"', "not a decimal"),
        ('zone_id="1" capacity="1" price="NaN" name="A" numbered="true"', "out of range"),
        ('zone_id="1" capacity="1" price="1.00" name="A" numbered="maybe"', "not true or false"),
    ],
)
def test_a_bad_zone_skips_its_slot_only(zone_attributes: str, problem: str) -> None:
    document = f"""<eventList><output>
      <base_event base_event_id="1" sell_mode="online" title="T">
        <event event_start_date="2030-01-01T10:00:00" event_end_date="2030-01-01T11:00:00"
               event_id="1" sell_from="2029-01-01T00:00:00" sell_to="2030-01-01T09:00:00"
               sold_out="false"><zone {zone_attributes}/></event>
        <event event_start_date="2030-01-02T10:00:00" event_end_date="2030-01-02T11:00:00"
               event_id="2" sell_from="2029-01-01T00:00:00" sell_to="2030-01-02T09:00:00"
               sold_out="false"><zone zone_id="1" capacity="1" price="1" name="A"
               numbered="false"/></event>
      </base_event></output></eventList>""".encode()
    (event,) = parse(document)
    assert isinstance(event, FeedEvent)
    assert [slot.external_id for slot in event.slots] == ["2"]
    assert problem in event.skipped[0].reason


def test_a_base_event_without_id_is_skipped_and_the_rest_lands() -> None:
    document = b"""<planList><output>
      <base_plan sell_mode="online" title="No id"/>
      <base_plan base_plan_id="7" sell_mode="online" organizer_company_id="x" title="Bad org"/>
      <base_plan base_plan_id="8" sell_mode="online" title="Fine"/>
    </output></planList>"""
    items = parse(document)
    assert [type(item).__name__ for item in items] == [
        "SkippedRecord",
        "SkippedRecord",
        "FeedEvent",
    ]
    missing_id, bad_organizer = items[0], items[1]
    assert isinstance(missing_id, SkippedRecord)
    assert isinstance(bad_organizer, SkippedRecord)
    assert "base_plan_id is missing" in missing_id.describe()
    assert "organizer_company_id" in bad_organizer.describe()


def test_provider_time_zone_setting_converts_to_utc() -> None:
    parsed = parse(fixture("response_1.xml"), zone="Europe/Madrid")
    camela = next(item for item in parsed if isinstance(item, FeedEvent))
    # 21:00 in Madrid in summer (UTC+2) is 19:00 UTC.
    assert camela.slots[0].starts_at == datetime(2021, 6, 30, 19, tzinfo=UTC)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<eventList><output><base_event base_event_id="1" sell_mode="online" title="&lol9;"/>
</output></eventList>"""


def test_billion_laughs_is_refused(tmp_path: object) -> None:
    with pytest.raises(FeedError, match="DOCTYPE"):
        parse(BILLION_LAUGHS)


def test_external_entity_is_refused_and_never_read(tmp_path: pytest.TempPathFactory) -> None:
    document = b"""<?xml version="1.0"?>
<!DOCTYPE eventList [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<eventList><output><base_event base_event_id="1" sell_mode="online" title="&secret;"/>
</output></eventList>"""
    with pytest.raises(FeedError, match="DOCTYPE"):
        parse(document)


def test_external_dtd_is_refused() -> None:
    document = b"""<?xml version="1.0"?>
<!DOCTYPE eventList SYSTEM "http://127.0.0.1:9/evil.dtd">
<eventList><output/></eventList>"""
    with pytest.raises(FeedError, match="DOCTYPE"):
        parse(document)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"", "not well-formed"),
        (b"   ", "not well-formed"),
        (fixture("response_1.xml")[:900], "not well-formed"),
        (b"<html><body>Service down</body></html>", "unknown feed root"),
        (b"not xml at all", "not well-formed"),
    ],
)
def test_malformed_or_empty_documents_raise(document: bytes, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        parse(document)


def test_synthetic_feed_has_exactly_the_zones_asked_for() -> None:
    document = b"".join(synthetic_feed(1234))
    parsed = events(document)
    assert sum(len(slot.zones) for event in parsed.values() for slot in event.slots) == 1234
