"""The Airtable emulator over real HTTP, driven by the stock pyairtable client (and by httpx
where a test needs the exact status and body)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pyairtable import Api, Table
from pyairtable.formulas import match
from requests import HTTPError, ReadTimeout

from junction.emulators.airtable import (
    DEFAULT_BASE_ID,
    DEFAULT_TOKEN,
    DEFAULT_USER_FIELDS,
    AirtableState,
    create_airtable_emulator,
    emulator_state,
)
from tests.support.live import serving_in_thread

TOKEN = "patTestToken.0123456789"
BASE = "appTestBase000001"
OTHER_BASE = "appOtherBase00001"
SIGN_UPS = "Sign-ups / 2026"
BASES: dict[str, dict[str, tuple[str, ...]]] = {
    BASE: {"Users": DEFAULT_USER_FIELDS, SIGN_UPS: ("Name",)},
    OTHER_BASE: {"Users": DEFAULT_USER_FIELDS},
}
RECORD_ID = re.compile(r"rec[0-9A-Za-z]{14}")
CREATED_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
RATE_LIMITED = {
    "error": {
        "type": "RATE_LIMIT_REACHED",
        "message": "Rate limit exceeded. Please try again later",
    }
}


@contextmanager
def connected(url: str, *, retry: bool = True, read_timeout: int = 5) -> Iterator[Api]:
    api = Api(TOKEN, endpoint_url=url, timeout=(2, read_timeout), retry_strategy=retry)
    try:
        yield api
    finally:
        api.session.close()


@dataclass
class Served:
    url: str
    state: AirtableState


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """One emulator for the module, with a rate limit no test here reaches by accident."""
    app = create_airtable_emulator(tokens=[TOKEN], bases=BASES, requests_per_second=10_000)
    with serving_in_thread(app, "Airtable emulator") as url:
        yield Served(url, emulator_state(app))


@pytest.fixture
def emulator(served: Served) -> Served:
    served.state.reset()
    return served


@pytest.fixture
def api(emulator: Served) -> Iterator[Api]:
    with connected(emulator.url) as api:
        yield api


@pytest.fixture
def users(api: Api) -> Table:
    return api.table(BASE, "Users")


@pytest.fixture
def http(emulator: Served) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=emulator.url, headers=headers, timeout=5) as client:
        yield client


def person(number: int, **changes: Any) -> dict[str, Any]:
    return {
        "Junction ID": f"u-{number:04d}",
        "First Name": f"Ada{number}",
        "Last Name": "Lovelace",
        "Email": f"ada{number}@example.com",
        **changes,
    }


def status_of(error: pytest.ExceptionInfo[HTTPError]) -> int:
    assert error.value.response is not None
    return error.value.response.status_code


def error_of(response: httpx.Response) -> Any:
    return response.json()["error"]


# Records --------------------------------------------------------------------------------


def test_creates_one_record_or_a_batch_of_up_to_ten(
    users: Table, emulator: Served, http: httpx.Client
) -> None:
    one = users.create(person(1), typecast=True)
    assert RECORD_ID.fullmatch(one["id"])
    assert CREATED_TIME.fullmatch(one["createdTime"])
    assert one["fields"] == person(1)
    assert users.get(one["id"]) == one

    batch = users.batch_create([person(n) for n in range(2, 13)])  # pyairtable sends 10 + 1
    assert [r["fields"]["Junction ID"] for r in batch] == [f"u-{n:04d}" for n in range(2, 13)]
    assert emulator.state.stats()["writes"] == 3

    eleven = [{"fields": person(n)} for n in range(20, 31)]
    too_many = http.post(f"/v0/{BASE}/Users", json={"records": eleven})
    assert too_many.status_code == 422
    assert error_of(too_many) == {
        "type": "INVALID_RECORDS",
        "message": "A maximum of 10 records can be created per request but you have provided 11.",
    }
    assert len(emulator.state.records(BASE, "Users")) == 12


def test_empty_values_are_left_out_as_airtable_does(users: Table) -> None:
    record = users.create({**person(1), "Last Name": "", "Synced At": None})
    assert "Last Name" not in record["fields"]
    assert "Synced At" not in record["fields"]


def test_batch_upsert_creates_then_updates_on_the_key_fields(
    users: Table, emulator: Served
) -> None:
    first = users.batch_upsert([{"fields": person(n)} for n in range(12)], ["Junction ID"])
    assert len(first["createdRecords"]) == 12
    assert first["updatedRecords"] == []

    renamed = [{"fields": person(n, **{"First Name": f"Grace{n}"})} for n in range(12)]
    second = users.batch_upsert(renamed, key_fields=["Junction ID", "Email"])
    assert second["createdRecords"] == []
    assert second["updatedRecords"] == first["createdRecords"]
    stored = emulator.state.records(BASE, "Users")
    assert [r["id"] for r in stored] == first["createdRecords"]
    assert [r["fields"]["First Name"] for r in stored] == [f"Grace{n}" for n in range(12)]

    replaced = users.batch_upsert(
        [{"fields": {"Junction ID": "u-0000", "Email": "new@example.com"}}],
        ["Junction ID"],
        replace=True,
    )
    assert replaced["records"][0]["fields"] == {"Junction ID": "u-0000", "Email": "new@example.com"}


def test_upsert_refuses_a_key_that_matches_several_records(users: Table, emulator: Served) -> None:
    users.batch_create([person(1), person(1)])
    with pytest.raises(HTTPError) as error:
        users.batch_upsert([{"fields": person(1, Email="x@example.com")}], ["Junction ID"])
    assert status_of(error) == 422
    assert {r["fields"]["Email"] for r in emulator.state.records(BASE, "Users")} == {
        "ada1@example.com"
    }


def test_update_merges_and_replace_clears_the_other_fields(
    users: Table, http: httpx.Client
) -> None:
    record = users.create(person(1))
    merged = users.update(record["id"], {"Synced At": "2026-01-05T10:00:00.000Z"})
    assert merged["fields"] == {**person(1), "Synced At": "2026-01-05T10:00:00.000Z"}
    replaced = users.update(record["id"], {"Email": "new@example.com"}, replace=True)
    assert replaced["fields"] == {"Email": "new@example.com"}
    [batch] = users.batch_update([{"id": record["id"], "fields": {"First Name": "Ada"}}])
    assert batch["fields"] == {"Email": "new@example.com", "First Name": "Ada"}

    missing = http.patch(f"/v0/{BASE}/Users/recDoesNotExist00", json={"fields": {"Email": "x"}})
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"type": "MODEL_ID_NOT_FOUND", "message": "Record not found"}
    }
    in_batch = http.patch(
        f"/v0/{BASE}/Users", json={"records": [{"id": "recDoesNotExist00", "fields": {}}]}
    )
    assert in_batch.status_code == 422
    assert error_of(in_batch)["type"] == "ROW_DOES_NOT_EXIST"


def test_deletes_one_record_or_a_batch(users: Table, emulator: Served, http: httpx.Client) -> None:
    ids = [r["id"] for r in users.batch_create([person(n) for n in range(5)])]
    assert users.delete(ids[0]) == {"deleted": True, "id": ids[0]}
    assert users.batch_delete(ids[1:3]) == [{"deleted": True, "id": i} for i in ids[1:3]]
    assert [r["id"] for r in emulator.state.records(BASE, "Users")] == ids[3:]

    assert http.delete(f"/v0/{BASE}/Users/{ids[0]}").status_code == 404
    naming_a_deleted_one = http.delete(f"/v0/{BASE}/Users", params={"records[]": [ids[3], ids[0]]})
    assert naming_a_deleted_one.status_code == 404
    assert len(emulator.state.records(BASE, "Users")) == 2  # all or nothing


# Listing --------------------------------------------------------------------------------


def test_lists_250_records_in_pages(users: Table, http: httpx.Client) -> None:
    created = [r["id"] for r in users.batch_create([person(n) for n in range(250)])]
    pages = list(users.iterate())
    assert [len(page) for page in pages] == [100, 100, 50]
    assert [r["id"] for page in pages for r in page] == created
    assert [r["id"] for r in users.all(page_size=30)] == created
    assert [r["id"] for r in users.all(page_size=50, max_records=120)] == created[:120]
    assert users.all(fields=["Email"], max_records=1)[0]["fields"] == {"Email": "ada0@example.com"}
    last = users.first(sort=["-Junction ID"])
    assert last is not None
    assert last["fields"]["Junction ID"] == "u-0249"

    first_page = http.get(f"/v0/{BASE}/Users", params={"pageSize": 100}).json()
    assert re.fullmatch(r"itr[0-9A-Za-z]{14}/rec[0-9A-Za-z]{14}", first_page["offset"])
    garbage = http.get(f"/v0/{BASE}/Users", params={"offset": "page-2"})
    assert garbage.status_code == 422
    assert error_of(garbage)["type"] == "INVALID_OFFSET_VALUE"
    too_big = http.get(f"/v0/{BASE}/Users", params={"pageSize": 101})
    assert too_big.status_code == 422
    assert error_of(too_big)["type"] == "INVALID_REQUEST_UNKNOWN"


def test_an_offset_from_before_a_reset_must_start_over(
    emulator: Served, http: httpx.Client
) -> None:
    http.post(f"/v0/{BASE}/Users", json={"records": [{"fields": person(n)} for n in range(3)]})
    offset = http.get(f"/v0/{BASE}/Users", params={"pageSize": 1}).json()["offset"]
    emulator.state.reset()
    stale = http.get(f"/v0/{BASE}/Users", params={"offset": offset})
    assert stale.status_code == 422
    assert error_of(stale)["type"] == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"


def test_finds_records_with_match_formulas(users: Table, http: httpx.Client) -> None:
    users.batch_create([person(n) for n in range(5)] + [person(9, **{"Last Name": "O'Brien"})])
    found = users.first(formula=match({"Email": "ada3@example.com"}))
    assert found is not None
    assert found["fields"]["Junction ID"] == "u-0003"
    both = users.first(formula=match({"Junction ID": "u-0009", "Last Name": "O'Brien"}))
    assert both is not None
    assert both["fields"]["Email"] == "ada9@example.com"
    assert users.first(formula=match({"Junction ID": "u-0009", "Last Name": "Lovelace"})) is None
    either = users.all(
        formula=match({"Email": "ada1@example.com", "Last Name": "O'Brien"}, match_any=True)
    )
    assert [r["fields"]["Junction ID"] for r in either] == ["u-0001", "u-0009"]

    unsupported = http.get(f"/v0/{BASE}/Users", params={"filterByFormula": "FIND('a', {Email})"})
    assert unsupported.status_code == 422
    assert error_of(unsupported)["type"] == "INVALID_FILTER_BY_FORMULA"
    unknown = http.get(f"/v0/{BASE}/Users", params={"filterByFormula": "{Nickname}='Ada'"})
    assert unknown.status_code == 422
    assert "Unknown field names: Nickname" in error_of(unknown)["message"]


def test_a_formula_too_long_for_a_url_is_posted_to_list_records(users: Table) -> None:
    long_email = "a" * 17_000 + "@example.com"
    users.batch_create([person(1), person(2, Email=long_email)])
    found = users.all(formula=match({"Email": long_email}))  # over 16,000 characters
    assert [r["fields"]["Junction ID"] for r in found] == ["u-0002"]


def test_tables_by_encoded_name_or_by_id(api: Api, emulator: Served) -> None:
    created = api.table(BASE, SIGN_UPS).create({"Name": "Ada"})
    table_id = emulator.state.table_id(BASE, SIGN_UPS)
    assert re.fullmatch(r"tbl[0-9A-Za-z]{14}", table_id)
    assert api.table(BASE, table_id).get(created["id"]) == created


# Errors ---------------------------------------------------------------------------------


def test_refuses_bad_tokens_unknown_bases_tables_and_fields(
    emulator: Served, http: httpx.Client, users: Table
) -> None:
    url = f"{emulator.url}/v0/{BASE}/Users"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        refused = httpx.get(url, headers=headers)
        assert refused.status_code == 401
        assert refused.json() == {
            "error": {"type": "AUTHENTICATION_REQUIRED", "message": "Authentication required"}
        }
    with connected(emulator.url) as api:
        api.api_key = "wrong"
        with pytest.raises(HTTPError) as error:
            api.table(BASE, "Users").all()
    assert status_of(error) == 401

    unknown_base = http.get("/v0/appNoSuchBase0001/Users")
    assert unknown_base.status_code == 404
    assert unknown_base.json() == {"error": "NOT_FOUND"}
    unknown_table = http.get(f"/v0/{BASE}/Customers")
    assert unknown_table.status_code == 403
    assert error_of(unknown_table)["type"] == "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
    assert error_of(unknown_table)["message"].startswith("Invalid permissions, or the requested")

    with pytest.raises(HTTPError) as error:
        users.create({"Nickname": "Ada"})
    assert status_of(error) == 422
    assert error.value.response is not None
    assert error.value.response.json() == {
        "error": {"type": "UNKNOWN_FIELD_NAME", "message": 'Unknown field name: "Nickname"'}
    }


DEEP_FORMULA = "(" * 200 + "{Email}='a'" + ")" * 200


@pytest.mark.parametrize(
    ("method", "path", "content", "status"),
    [
        ("POST", "", b"{", 400),
        ("POST", "", b"[" * 100_000, 400),
        ("POST", "", b'{"fields": {"Email": NaN}}', 400),
        ("POST", "", b"[]", 422),
        ("POST", "", b"{}", 422),
        ("POST", "", b'{"records": 5}', 422),
        ("POST", "", b'{"records": [1]}', 422),
        ("POST", "", b'{"fields": []}', 422),
        ("POST", "", b'{"fields": {"Email": {"nested": 1}}}', 422),
        ("POST", "", b'{"fields": {"File Uploaded": [{"url": "file:///etc/passwd"}]}}', 422),
        ("POST", "", b'{"fields": {}, "typecast": "yes"}', 422),
        ("PATCH", "", b'{"records": [{"fields": {}}]}', 422),
        ("PATCH", "", b'{"records": [{"fields": 3}], "performUpsert": 1}', 422),
        (
            "PATCH",
            "",
            b'{"records": [{"fields": 3}], "performUpsert": {"fieldsToMergeOn": ["Email"]}}',
            422,
        ),
        (
            "PUT",
            "",
            b'{"records": [{"fields": {}}], "performUpsert": {"fieldsToMergeOn": []}}',
            422,
        ),
        ("POST", "/listRecords", b'{"pageSize": 500}', 422),
        ("POST", "/listRecords", b'{"sort": [{"field": "Email", "direction": "up"}]}', 422),
        ("GET", "?pageSize=abc", b"", 422),
        ("GET", "?view=Grid%20view", b"", 422),
        ("GET", f"?filterByFormula={DEEP_FORMULA}", b"", 422),
        ("GET", "?filterByFormula={Email}=", b"", 422),
        ("DELETE", "", b"", 422),
        ("POST", "/recAAAAAAAAAAAAAA", b"{}", 404),
        ("GET", "/recAAAAAAAAAAAAAA", b"", 404),
    ],
)
def test_bad_requests_get_a_4xx_never_a_500(
    http: httpx.Client, method: str, path: str, content: bytes, status: int
) -> None:
    response = http.request(method, f"/v0/{BASE}/Users{path}", content=content)
    assert response.status_code == status
    assert "error" in response.json()


# Rate limit and faults ------------------------------------------------------------------


def test_the_rate_limit_starts_a_penalty_that_holds_then_clears() -> None:
    app = create_airtable_emulator(
        tokens=[TOKEN], bases=BASES, requests_per_second=5, penalty_seconds=1.5
    )
    with serving_in_thread(app, "Airtable emulator") as url, connected(url, retry=False) as api:
        users, other_base = api.table(BASE, "Users"), api.table(OTHER_BASE, "Users")
        for _ in range(5):
            users.all()
        with pytest.raises(HTTPError) as error:
            users.all()
        started = time.monotonic()
        assert status_of(error) == 429
        assert error.value.response is not None
        assert error.value.response.json() == RATE_LIMITED
        assert other_base.all() == []  # the limit is per base
        assert httpx.get(f"{url}/_emulator/stats").json()["rate_limited"] == 1

        time.sleep(max(0.0, started + 1.1 - time.monotonic()))
        with pytest.raises(HTTPError) as error:
            users.all()  # the last second was quiet, but the penalty still holds
        assert status_of(error) == 429
        time.sleep(max(0.0, started + 1.7 - time.monotonic()))
        assert users.all() == []


def test_an_error_fault_answers_500_and_writes_nothing(
    users: Table, emulator: Served, http: httpx.Client
) -> None:
    assert http.put("/_emulator/faults", json={"error_rate": 1}).json()["error_rate"] == 1.0
    with pytest.raises(HTTPError) as error:
        users.create(person(1))
    assert status_of(error) == 500
    assert emulator.state.records(BASE, "Users") == []

    http.put("/_emulator/faults", json={"error_rate": 0})
    users.create(person(1))
    assert len(emulator.state.records(BASE, "Users")) == 1
    refused = http.put("/_emulator/faults", json={"error_rate": 2})
    assert refused.status_code == 422
    assert refused.json() == {"errors": ["error_rate must be a number from 0 to 1"]}


def test_a_timeout_fault_applies_the_write_then_stalls(emulator: Served) -> None:
    emulator.state.faults.timeout_rate = 1.0
    emulator.state.faults.stall_seconds = 1.5
    with connected(emulator.url, retry=False, read_timeout=1) as api:
        users = api.table(BASE, "Users")
        with pytest.raises(ReadTimeout):
            users.create(person(1))
        [stored] = emulator.state.records(BASE, "Users")  # the client gave up, the record exists
        assert stored["fields"] == person(1)
        assert [r["id"] for r in users.all()] == [stored["id"]]  # reads do not stall
    assert emulator.state.stats()["stalled"] == 1


def test_a_spurious_429_starts_no_penalty(emulator: Served, http: httpx.Client) -> None:
    http.put("/_emulator/faults", json={"rate_limit_rate": 1, "seed": 1})
    refused = http.get(f"/v0/{BASE}/Users")
    assert refused.status_code == 429
    assert refused.json() == RATE_LIMITED
    http.put("/_emulator/faults", json={"rate_limit_rate": 0})
    assert http.get(f"/v0/{BASE}/Users").status_code == 200


# Attachments and control ----------------------------------------------------------------


def test_attachments_get_ids_and_their_urls_are_recorded(
    users: Table, emulator: Served, http: httpx.Client
) -> None:
    cv = "https://files.example.com/uploads/cv%20final.pdf"
    record = users.create(person(1, **{"File Uploaded": [{"url": cv}]}))
    [attachment] = record["fields"]["File Uploaded"]
    assert re.fullmatch(r"att[0-9A-Za-z]{14}", attachment["id"])
    assert attachment == {
        "id": attachment["id"],
        "url": cv,
        "filename": "cv final.pdf",
        "type": "application/pdf",
    }
    photo = "https://files.example.com/photo"
    keep_and_add: dict[str, Any] = {
        "File Uploaded": [{"id": attachment["id"]}, {"url": photo, "filename": "me.png"}]
    }
    kept = users.update(record["id"], keep_and_add)
    assert kept["fields"]["File Uploaded"][0] == attachment
    assert kept["fields"]["File Uploaded"][1]["type"] == "image/png"
    assert emulator.state.attachment_urls() == [cv, photo]
    assert http.get("/_emulator/attachments").json() == {"urls": [cv, photo]}


def test_the_control_api_reads_records_and_stats_then_resets(
    users: Table, emulator: Served
) -> None:
    created = users.create(person(1))
    with httpx.Client(base_url=emulator.url) as control:  # no token needed
        records_path = f"/_emulator/bases/{BASE}/tables/Users/records"
        assert control.get(records_path).json() == {"records": [created]}
        assert control.get("/_emulator/stats").json() == {
            "requests": {"200": 1},
            "writes": 1,
            "rate_limited": 0,
            "stalled": 0,
        }
        assert control.get("/_emulator/faults").json() == {
            "error_rate": 0.0,
            "timeout_rate": 0.0,
            "rate_limit_rate": 0.0,
            "stall_seconds": 30.0,
            "seed": None,
        }
        assert control.post("/_emulator/reset").json() == {"reset": True}
        assert control.get(records_path).json() == {"records": []}
        assert control.get("/_emulator/stats").json()["requests"] == {}
        assert control.get(f"/_emulator/bases/{BASE}/tables/Nope/records").status_code == 403


def test_the_default_emulator_serves_the_demo_base() -> None:
    with serving_in_thread(create_airtable_emulator(), "Airtable emulator") as url:
        api = Api(DEFAULT_TOKEN, endpoint_url=url, timeout=(2, 5))
        try:
            created = api.table(DEFAULT_BASE_ID, "Users").create(person(1))
        finally:
            api.session.close()
    assert created["fields"] == person(1)
