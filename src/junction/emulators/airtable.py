"""An emulator of the Airtable Web API's records endpoints, for the demo mode and the tests of
the profiles sync.

The stock pyairtable client works against it unchanged:
``pyairtable.Api(token, endpoint_url=<base URL>)``. It keeps records in memory, per base and
table, and answers with Airtable's documented shapes, status codes, auth and rate limit
(docs/emulators.md lists what it covers and where it is simpler than Airtable).

API, under ``/v0/{baseId}/{tableIdOrName}`` (the table by name, URL-encoded, or by ``tbl`` id),
with ``Authorization: Bearer <token>``:

* ``GET`` lists records (``pageSize`` up to 100, ``offset``, ``maxRecords``, ``fields[]``,
  ``sort[n][field|direction]``, ``filterByFormula``); ``POST .../listRecords`` takes the same
  parameters as a JSON body. ``GET .../{recordId}`` reads one record.
* ``POST`` creates one record (``{"fields"}``) or up to 10 (``{"records": [...]}``).
* ``PATCH`` / ``PUT`` update one record (``.../{recordId}``) or up to 10, or upsert them with
  ``performUpsert.fieldsToMergeOn``; ``PATCH`` merges fields, ``PUT`` clears the others.
* ``DELETE .../{recordId}`` or ``DELETE ?records[]=...`` (up to 10).
* More than ``requests_per_second`` requests to a base within a second start a penalty: every
  request to that base gets 429 for ``penalty_seconds``.

``Faults`` injects failures: 500s that write nothing, writes that stall after being applied
(the client times out although the record exists) and spurious 429s.

Control, without auth or rate limit: ``GET``/``PUT /_emulator/faults``,
``GET /_emulator/bases/{base}/tables/{table}/records``, ``GET /_emulator/attachments``,
``GET /_emulator/stats`` and ``POST /_emulator/reset``. In the same process,
``emulator_state(app)`` reads the same state.

Written by hand: no maintained library emulates Airtable. ``filterByFormula`` understands
only what record lookups need (equality, ``AND``/``OR``/``NOT``), with a small parser, and
answers 422 to anything else rather than guess.

Run alone: ``python -m junction.emulators.airtable --port 8200``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import mimetypes
import random
import re
import string
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DEFAULT_TOKEN = "key-demo"  # noqa: S105  (the demo token, not a secret)
DEFAULT_BASE_ID = "appDemoBase0000001"
DEFAULT_TABLE = "Users"
DEFAULT_USER_FIELDS = (
    "Junction ID",
    "First Name",
    "Last Name",
    "Email",
    "Date of Birth",
    "File Uploaded",
    "Synced At",
)
MAX_RECORDS_PER_REQUEST = 10
MAX_PAGE_SIZE = 100
MAX_MERGE_FIELDS = 3
MAX_FORMULA_DEPTH = 32
MAX_OPEN_ITERATORS = 1000
ALPHANUMERIC = string.ascii_letters + string.digits

MODEL_NOT_FOUND_MESSAGE = (
    "Invalid permissions, or the requested model was not found. Check that both your user "
    "and your token have the required permissions, and that the model names and/or ids are "
    "correct."
)
INVALID_REQUEST_MESSAGE = "Invalid request: parameter validation failed. Check your request data."
INVALID_FORMULA_MESSAGE = "The formula for filtering records is invalid: "
UPDATE_RECORDS_MESSAGE = (
    'You must provide an array of up to 10 record objects, each with an "id" ID field and '
    'a "fields" object for cell values.'
)


# Faults ---------------------------------------------------------------------------------


@dataclass
class Faults:
    """Failures to inject; mutable while the emulator runs, so a test can switch them."""

    error_rate: float = 0.0
    """Fraction of requests answered 500 without applying anything."""
    timeout_rate: float = 0.0
    """Fraction of writes applied, then answered only after ``stall_seconds``."""
    rate_limit_rate: float = 0.0
    """Fraction of requests answered 429 spuriously (no penalty follows)."""
    stall_seconds: float = 30.0
    seed: int | None = None
    """Seed of the draws, for reproducible tests; None draws differently on each run."""
    _random: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self._random = random.Random(self.seed)

    def strikes(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FAULT_SETTINGS}

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply the given settings, all or none; ValueError says what is wrong."""
        unknown = set(changes) - set(_FAULT_SETTINGS)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        checked = {name: _FAULT_SETTINGS[name](name, value) for name, value in changes.items()}
        for name, value in checked.items():
            setattr(self, name, value)
        self.reseed()

    def clear(self) -> None:
        self.update({name: getattr(Faults, name) for name in _FAULT_SETTINGS})


def _rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number from 0 to 1")
    return float(value)


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        raise ValueError(f"{name} must be a number of seconds from 0 to 3600")
    return float(value)


def _seed(name: str, value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} must be an integer or null")
    return value


_FAULT_SETTINGS: dict[str, Callable[[str, Any], Any]] = {
    "error_rate": _rate,
    "timeout_rate": _rate,
    "rate_limit_rate": _rate,
    "stall_seconds": _seconds,
    "seed": _seed,
}


# Errors ---------------------------------------------------------------------------------


class AirtableError(Exception):
    """An answer in Airtable's error shape; raised anywhere in a request, sent as is."""

    def __init__(self, status: int, error: str | dict[str, str]) -> None:
        super().__init__(error)
        self.status = status
        self.error = error

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.error}, status_code=self.status)


def _error(status: int, error_type: str, message: str) -> AirtableError:
    return AirtableError(status, {"type": error_type, "message": message})


def _route_not_found() -> AirtableError:
    # Airtable answers an unknown base or route with a bare string, unlike its other errors.
    return AirtableError(404, "NOT_FOUND")


def _record_not_found() -> AirtableError:
    return _error(404, "MODEL_ID_NOT_FOUND", "Record not found")


def _invalid_request(message: str = INVALID_REQUEST_MESSAGE) -> AirtableError:
    return _error(422, "INVALID_REQUEST_UNKNOWN", message)


def _unknown_field(name: str) -> AirtableError:
    return _error(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')


def _invalid_value(name: str) -> AirtableError:
    return _error(
        422, "INVALID_VALUE_FOR_COLUMN", f'Field "{name}" cannot accept the provided value'
    )


def _invalid_records(message: str = UPDATE_RECORDS_MESSAGE) -> AirtableError:
    return _error(422, "INVALID_RECORDS", message)


def _invalid_formula(reason: str) -> AirtableError:
    return _error(422, "INVALID_FILTER_BY_FORMULA", INVALID_FORMULA_MESSAGE + reason)


# Records and tables ---------------------------------------------------------------------


def _random_id(prefix: str, chooser: random.Random) -> str:
    return prefix + "".join(chooser.choices(ALPHANUMERIC, k=14))


def _table_id(base_id: str, name: str) -> str:
    """A stable ``tbl`` id, so a table keeps its id across restarts and resets."""
    number = int.from_bytes(hashlib.sha256(f"{base_id}/{name}".encode()).digest()[:12], "big")
    digits = []
    for _ in range(14):
        number, remainder = divmod(number, len(ALPHANUMERIC))
        digits.append(ALPHANUMERIC[remainder])
    return "tbl" + "".join(digits)


def _created_time() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_empty(value: Any) -> bool:
    # Airtable stores "", [] and false as an empty cell and leaves empty cells out of answers.
    return value is None or value == "" or value == [] or value is False


@dataclass
class StoredRecord:
    id: str
    created_time: str
    fields: dict[str, Any] = field(default_factory=dict)

    def write(self, values: Mapping[str, Any], *, replace: bool) -> None:
        if replace:
            self.fields = {}
        for name, value in values.items():
            if _is_empty(value):
                self.fields.pop(name, None)
            else:
                self.fields[name] = value

    def as_json(self, only: Sequence[str] | None = None) -> dict[str, Any]:
        shown = (
            self.fields if only is None else {k: self.fields[k] for k in only if k in self.fields}
        )
        return {"id": self.id, "createdTime": self.created_time, "fields": json_copy(shown)}


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data, so nothing outside can change what is stored."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value


@dataclass
class Table:
    id: str
    name: str
    field_names: frozenset[str]
    records: dict[str, StoredRecord] = field(default_factory=dict)
    """In creation order, which is the order lists come in."""

    def check_field(self, name: str) -> None:
        if name not in self.field_names:
            raise _unknown_field(name)

    def record(self, record_id: str) -> StoredRecord:
        record = self.records.get(record_id)
        if record is None:
            raise _record_not_found()
        return record


@dataclass
class ListIterator:
    """The records a list matched when its first page was asked for, as Airtable pages them."""

    id: str
    table_id: str
    record_ids: list[str]
    position: int = 0

    def offset(self) -> str:
        return f"{self.id}/{self.record_ids[self.position]}"


@dataclass
class BaseLimit:
    """The last second of requests to one base, and the end of its penalty, if any."""

    recent: deque[float] = field(default_factory=deque)
    penalty_until: float = 0.0


class AirtableState:
    """Everything the emulator holds; the ASGI app serves it, tests may read it directly."""

    def __init__(
        self,
        *,
        tokens: Iterable[str],
        bases: Mapping[str, Mapping[str, Iterable[str]]],
        requests_per_second: int,
        penalty_seconds: float,
        faults: Faults,
    ) -> None:
        self.tokens = frozenset(tokens)
        self.requests_per_second = requests_per_second
        self.penalty_seconds = penalty_seconds
        self.faults = faults
        self.lock = threading.RLock()
        self.ids = random.Random()
        if requests_per_second < 1 or penalty_seconds < 0:
            raise ValueError("requests_per_second must be at least 1, penalty_seconds at least 0")
        self._schema = {
            base_id: {name: frozenset(names) for name, names in tables.items()}
            for base_id, tables in bases.items()
        }
        self._empty()

    def reset(self) -> None:
        """Empty every table and forget requests, penalties, statistics and faults."""
        with self.lock:
            self._empty()
            self.faults.clear()

    def _empty(self) -> None:
        with self.lock:
            self.bases = {
                base_id: {
                    name: Table(_table_id(base_id, name), name, field_names)
                    for name, field_names in tables.items()
                }
                for base_id, tables in self._schema.items()
            }
            self.iterators: OrderedDict[str, ListIterator] = OrderedDict()
            self.limits: dict[str, BaseLimit] = {}
            self.statuses: Counter[str] = Counter()
            self.writes = 0
            self.stalls = 0
            self.new_attachment_urls: list[str] = []

    def base(self, base_id: str) -> dict[str, Table]:
        tables = self.bases.get(base_id)
        if tables is None:
            raise _route_not_found()
        return tables

    def table(self, base_id: str, id_or_name: str) -> Table:
        for table in self.base(base_id).values():
            if id_or_name in (table.id, table.name):
                return table
        raise _error(403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", MODEL_NOT_FOUND_MESSAGE)

    def table_id(self, base_id: str, name: str) -> str:
        return self.table(base_id, name).id

    def records(self, base_id: str, table: str) -> list[dict[str, Any]]:
        """Every record of a table (by name or id), as the API shows them, oldest first."""
        with self.lock:
            return [record.as_json() for record in self.table(base_id, table).records.values()]

    def attachment_urls(self) -> list[str]:
        """The URL of every attachment written, in order, so a test can fetch them."""
        with self.lock:
            return list(self.new_attachment_urls)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(self.statuses),
                "writes": self.writes,
                "rate_limited": self.statuses["429"],
                "stalled": self.stalls,
            }

    def new_record(self, table: Table) -> StoredRecord:
        record_id = _random_id("rec", self.ids)
        while record_id in table.records:
            record_id = _random_id("rec", self.ids)
        record = StoredRecord(record_id, _created_time())
        table.records[record_id] = record
        return record

    def admit(self, base_id: str) -> None:
        """Count a request to a base; 429 while its penalty lasts or when it starts one."""
        now = time.monotonic()
        limit = self.limits.setdefault(base_id, BaseLimit())
        if now < limit.penalty_until:
            raise _rate_limited()
        while limit.recent and limit.recent[0] <= now - 1.0:
            limit.recent.popleft()
        if len(limit.recent) >= self.requests_per_second:
            limit.penalty_until = now + self.penalty_seconds
            limit.recent.clear()
            raise _rate_limited()
        limit.recent.append(now)

    def inject_faults(self) -> None:
        if self.faults.strikes(self.faults.rate_limit_rate):
            raise _rate_limited()
        if self.faults.strikes(self.faults.error_rate):
            raise _error(500, "SERVER_ERROR", "The server encountered an unexpected condition.")

    def open_iterator(self, table: Table, record_ids: list[str]) -> ListIterator:
        iterator = ListIterator(_random_id("itr", self.ids), table.id, record_ids)
        self.iterators[iterator.id] = iterator
        while len(self.iterators) > MAX_OPEN_ITERATORS:
            self.iterators.popitem(last=False)
        return iterator

    def resume_iterator(self, table: Table, offset: Any) -> ListIterator:
        if not isinstance(offset, str) or not re.fullmatch(r"itr\w{14}/rec\w{14}", offset):
            raise _error(422, "INVALID_OFFSET_VALUE", f"The value of offset {offset} is invalid")
        iterator = self.iterators.get(offset.partition("/")[0])
        if iterator is None:
            # Airtable forgets iterators after a while; a client must then start over.
            raise _error(
                422,
                "LIST_RECORDS_ITERATOR_NOT_AVAILABLE",
                "The iterator is no longer available; restart the listing.",
            )
        if iterator.table_id != table.id:
            raise _error(422, "INVALID_OFFSET_VALUE", f"The value of offset {offset} is invalid")
        return iterator


def _rate_limited() -> AirtableError:
    return _error(429, "RATE_LIMIT_REACHED", "Rate limit exceeded. Please try again later")


# Cell values ----------------------------------------------------------------------------


@dataclass
class Writing:
    """The checked values of one record to write; ``record`` is None for a new record."""

    record: StoredRecord | None
    values: dict[str, Any]
    attachment_urls: list[str]


def _checked_values(
    state: AirtableState, table: Table, fields: Any, record: StoredRecord | None
) -> Writing:
    if not isinstance(fields, dict):
        raise _invalid_request()
    urls: list[str] = []
    values = {}
    for name, value in fields.items():
        table.check_field(name)
        current = record.fields.get(name) if record else None
        values[name] = _cell_value(state, name, value, current, urls)
    return Writing(record, values, urls)


def _cell_value(state: AirtableState, name: str, value: Any, current: Any, urls: list[str]) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        kept = {item["id"]: item for item in current or [] if isinstance(item, dict)}
        return [_attachment(state, name, item, kept, urls) for item in value]
    raise _invalid_value(name)


def _attachment(
    state: AirtableState,
    name: str,
    given: dict[str, Any],
    kept: Mapping[str, dict[str, Any]],
    urls: list[str],
) -> dict[str, Any]:
    """An existing attachment kept by id, or a new one from a URL (never downloaded)."""
    known = given.get("id")
    if isinstance(known, str) and known in kept and set(given) <= {"id", "url", "filename"}:
        return kept[known]
    url, filename = given.get("url"), given.get("filename")
    if (
        "id" in given
        or not isinstance(url, str)
        or urlsplit(url).scheme not in ("http", "https")
        or not (filename is None or isinstance(filename, str))
    ):
        raise _invalid_value(name)
    filename = filename or unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "file"
    urls.append(url)
    return {
        "id": _random_id("att", state.ids),
        "url": url,
        "filename": filename,
        "type": mimetypes.guess_type(filename)[0] or "application/octet-stream",
    }


def _apply(
    state: AirtableState, table: Table, writings: list[Writing], *, replace: bool
) -> list[StoredRecord]:
    """Write checked values; every check passed first, so a batch is all or nothing."""
    written = []
    for writing in writings:
        record = writing.record or state.new_record(table)
        record.write(writing.values, replace=replace)
        state.new_attachment_urls.extend(writing.attachment_urls)
        written.append(record)
    return written


# filterByFormula ------------------------------------------------------------------------

Formula = Callable[[Mapping[str, Any]], Any]
T = TypeVar("T")

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<field>\{(?:\\.|[^\\}])*\})
      | (?P<string>'(?:\\.|[^\\'])*'|"(?:\\.|[^\\"])*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<name>[A-Za-z_]\w*)
      | (?P<symbol>!=|=|\(|\)|,)
    )""",
    re.VERBOSE,
)
_CONSTANTS = {"TRUE": True, "FALSE": False, "BLANK": None}


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            raise _invalid_formula("Invalid formula. Please check your formula text.")
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    return tokens


def _unescape(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted[1:-1], flags=re.DOTALL)


class FormulaParser:
    """Equalities of fields and literals, combined with AND, OR and NOT; 422 for the rest."""

    def __init__(self, text: str, table: Table) -> None:
        self.tokens = _tokens(text)
        self.table = table
        self.position = 0
        self.depth = 0

    def parse(self) -> Formula:
        formula = self._comparison()
        if self.position != len(self.tokens):
            raise _invalid_formula("Invalid formula. Please check your formula text.")
        return formula

    def _peek(self) -> tuple[str, str]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("end", "")

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        token = self._peek()
        if token[0] == "end" or (expected is not None and token[1] != expected):
            raise _invalid_formula("Invalid formula. Please check your formula text.")
        self.position += 1
        return token

    def _comparison(self) -> Formula:
        left = self._operand()
        if self._peek()[1] not in ("=", "!="):
            return left
        negate = self._take()[1] == "!="
        right = self._operand()
        return lambda fields: _formula_equal(left(fields), right(fields)) != negate

    def _operand(self) -> Formula:
        kind, text = self._take()
        if kind == "field" or (kind == "name" and self._peek()[1] != "("):
            return self._field(_unescape(text) if kind == "field" else text)
        if kind == "string":
            value: Any = _unescape(text)
            return lambda fields: value
        if kind == "number":
            number = float(text)
            return lambda fields: number
        if kind == "name":
            return self._function(text.upper())
        if text == "(":
            return self._nested(self._comparison, closing=")")
        raise _invalid_formula("Invalid formula. Please check your formula text.")

    def _field(self, name: str) -> Formula:
        if name not in self.table.field_names:
            raise _invalid_formula(f"Unknown field names: {name}")
        return lambda fields: fields.get(name)

    def _nested(self, parse: Callable[[], T], closing: str) -> T:
        self.depth += 1
        if self.depth > MAX_FORMULA_DEPTH:
            raise _invalid_formula("the formula is nested too deeply")
        formula = parse()
        self._take(closing)
        self.depth -= 1
        return formula

    def _function(self, name: str) -> Formula:
        self._take("(")
        if name in _CONSTANTS:
            self._take(")")
            constant = _CONSTANTS[name]
            return lambda fields: constant
        if name not in ("AND", "OR", "NOT"):
            raise _invalid_formula(f"the function {name}() is not supported by this emulator")
        arguments = self._nested(self._arguments, closing=")")
        if name == "NOT" and len(arguments) != 1:
            raise _invalid_formula("NOT() takes exactly one argument")
        return _combine(name, arguments)

    def _arguments(self) -> list[Formula]:
        arguments = [self._comparison()]
        while self._peek()[1] == ",":
            self._take(",")
            arguments.append(self._comparison())
        return arguments


def _combine(name: str, arguments: list[Formula]) -> Formula:
    if name == "AND":
        return lambda fields: all(_truthy(argument(fields)) for argument in arguments)
    if name == "OR":
        return lambda fields: any(_truthy(argument(fields)) for argument in arguments)
    return lambda fields: not _truthy(arguments[0](fields))


def _truthy(value: Any) -> bool:
    """Airtable's rule: 0, false, "", NaN, [] and blank exclude a record."""
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(value)


def _formula_equal(left: Any, right: Any) -> bool:
    if left is None or right is None:
        other = right if left is None else left
        return other is None or other == "" or other == 0
    if isinstance(left, str) or isinstance(right, str):
        return _as_text(left) == _as_text(right)
    return bool(left == right)


def _as_text(value: Any) -> str:
    """A value as Airtable's formulas show it as text: 3 not 3.0, lists joined by commas."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(_as_text(item) for item in value)
    if isinstance(value, dict):
        return f"{value.get('filename', '')} ({value.get('url', '')})"
    return "" if value is None else str(value)


# Listing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListQuery:
    page_size: int = MAX_PAGE_SIZE
    max_records: int | None = None
    fields: tuple[str, ...] | None = None
    formula: str | None = None
    sort: tuple[tuple[str, bool], ...] = ()
    """(field, descending) pairs, most significant first."""
    offset: str | None = None


_LIST_PARAMETERS = {
    "pageSize",
    "maxRecords",
    "fields",
    "filterByFormula",
    "sort",
    "offset",
    "view",
    "cellFormat",
    "returnFieldsByFieldId",
    "recordMetadata",
    "timeZone",
    "userLocale",
}


def _positive(value: Any, highest: int | None = None) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _invalid_request() from None
    if isinstance(value, bool | float) or number < 1 or (highest and number > highest):
        raise _invalid_request()
    return number


def _refuse_unsupported(view: Any, cell_format: Any, by_field_id: Any) -> None:
    if view is not None:
        raise _invalid_request("Views are not supported by this emulator; filter with a formula.")
    if cell_format not in (None, "json"):
        raise _invalid_request('Only cellFormat "json" is supported by this emulator.')
    if by_field_id not in (None, False, 0, "0", "false"):
        raise _invalid_request("returnFieldsByFieldId is not supported by this emulator.")


def _query_from_params(params: QueryParams) -> ListQuery:
    _refuse_unsupported(
        params.get("view"), params.get("cellFormat"), params.get("returnFieldsByFieldId")
    )
    names = params.getlist("fields[]") + params.getlist("fields")
    sorts: dict[int, dict[str, str]] = {}
    for key, value in params.multi_items():
        match = re.fullmatch(r"sort\[(\d{1,3})\]\[(field|direction)\]", key)
        if match:
            sorts.setdefault(int(match[1]), {})[match[2]] = value
    return ListQuery(
        page_size=_positive(params.get("pageSize", MAX_PAGE_SIZE), MAX_PAGE_SIZE),
        max_records=_positive(params["maxRecords"]) if "maxRecords" in params else None,
        fields=tuple(names) if names else None,
        formula=params.get("filterByFormula") or None,
        sort=_sort_keys([sorts[index] for index in sorted(sorts)]),
        offset=params.get("offset"),
    )


def _query_from_body(body: dict[str, Any]) -> ListQuery:
    if set(body) - _LIST_PARAMETERS:
        raise _invalid_request()
    _refuse_unsupported(body.get("view"), body.get("cellFormat"), body.get("returnFieldsByFieldId"))
    names, formula, sort = body.get("fields"), body.get("filterByFormula"), body.get("sort", [])
    if names is not None and not _strings(names):
        raise _invalid_request()
    if not (formula is None or isinstance(formula, str)) or not isinstance(sort, list):
        raise _invalid_request()
    return ListQuery(
        page_size=_positive(body.get("pageSize", MAX_PAGE_SIZE), MAX_PAGE_SIZE),
        max_records=_positive(body["maxRecords"]) if "maxRecords" in body else None,
        fields=tuple(names) if names is not None else None,
        formula=formula or None,
        sort=_sort_keys(sort),
        offset=body.get("offset"),
    )


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _sort_keys(sorts: list[Any]) -> tuple[tuple[str, bool], ...]:
    keys = []
    for sort in sorts:
        if not isinstance(sort, dict) or not isinstance(sort.get("field"), str):
            raise _invalid_request()
        direction = sort.get("direction", "asc")
        if direction not in ("asc", "desc"):
            raise _invalid_request()
        keys.append((sort["field"], direction == "desc"))
    return tuple(keys)


def _list_records(state: AirtableState, table: Table, query: ListQuery) -> dict[str, Any]:
    for name in (query.fields or ()) + tuple(name for name, _ in query.sort):
        table.check_field(name)
    formula = FormulaParser(query.formula, table).parse() if query.formula else None
    if query.offset is not None:
        iterator = state.resume_iterator(table, query.offset)
    else:
        iterator = state.open_iterator(table, _matching_ids(table, query, formula))
    page: list[dict[str, Any]] = []
    while len(page) < query.page_size and iterator.position < len(iterator.record_ids):
        record = table.records.get(iterator.record_ids[iterator.position])
        iterator.position += 1
        if record is not None:
            page.append(record.as_json(query.fields))
    if iterator.position < len(iterator.record_ids):
        return {"records": page, "offset": iterator.offset()}
    state.iterators.pop(iterator.id, None)
    return {"records": page}


def _matching_ids(table: Table, query: ListQuery, formula: Formula | None) -> list[str]:
    records = [r for r in table.records.values() if formula is None or _truthy(formula(r.fields))]
    for name, descending in reversed(query.sort):
        records.sort(key=lambda record: _sort_value(record.fields.get(name)), reverse=descending)
    ids = [record.id for record in records]
    return ids[: query.max_records] if query.max_records is not None else ids


def _sort_value(value: Any) -> tuple[int, float, str]:
    """Empty cells first, then numbers, then text (case-insensitive), as Airtable sorts."""
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, bool | int | float):
        return (1, float(value), "")
    return (2, 0.0, _as_text(value).casefold())


# Writes ---------------------------------------------------------------------------------


def _only_keys(body: dict[str, Any], allowed: set[str]) -> None:
    if set(body) - allowed:
        raise _invalid_request()
    if not isinstance(body.get("typecast", False), bool):
        raise _invalid_request()
    _refuse_unsupported(None, None, body.get("returnFieldsByFieldId"))


def _create(state: AirtableState, table: Table, body: dict[str, Any]) -> dict[str, Any]:
    _only_keys(body, {"fields", "records", "typecast", "returnFieldsByFieldId"})
    if "records" in body and "fields" in body:
        raise _invalid_request()
    if "records" in body:
        records = body["records"]
        if not isinstance(records, list) or not records:
            raise _invalid_records("You must provide an array of record objects.")
        if len(records) > MAX_RECORDS_PER_REQUEST:
            raise _invalid_records(
                "A maximum of 10 records can be created per request but you have "
                f"provided {len(records)}."
            )
        if not all(isinstance(r, dict) and set(r) == {"fields"} for r in records):
            raise _invalid_records('Each record must be an object with a "fields" object.')
        writings = [_checked_values(state, table, r["fields"], None) for r in records]
        return {"records": [r.as_json() for r in _apply(state, table, writings, replace=False)]}
    writing = _checked_values(state, table, _fields_of(body), None)
    return _apply(state, table, [writing], replace=False)[0].as_json()


def _fields_of(body: dict[str, Any]) -> Any:
    if "fields" not in body:
        raise _error(
            422,
            "INVALID_REQUEST_MISSING_FIELDS",
            'Could not find field "fields" in the request body',
        )
    return body["fields"]


def _update_one(
    state: AirtableState, table: Table, record_id: str, body: dict[str, Any], *, replace: bool
) -> dict[str, Any]:
    _only_keys(body, {"fields", "typecast", "returnFieldsByFieldId"})
    record = table.record(record_id)
    writing = _checked_values(state, table, _fields_of(body), record)
    return _apply(state, table, [writing], replace=replace)[0].as_json()


def _update_many(
    state: AirtableState, table: Table, body: dict[str, Any], *, replace: bool
) -> dict[str, Any]:
    _only_keys(body, {"records", "typecast", "returnFieldsByFieldId", "performUpsert"})
    records = body.get("records")
    if not isinstance(records, list) or not 1 <= len(records) <= MAX_RECORDS_PER_REQUEST:
        raise _invalid_records()
    merge_on = _merge_fields(table, body["performUpsert"]) if "performUpsert" in body else None
    if not all(_update_shaped(record) for record in records):
        raise _invalid_records()
    if merge_on is None and not all("id" in r for r in records):
        raise _invalid_records()
    _refuse_repeated_keys(records, merge_on)
    writings = [_planned(state, table, record, merge_on) for record in records]
    written = _apply(state, table, writings, replace=replace)
    answer: dict[str, Any] = {"records": [record.as_json() for record in written]}
    if merge_on is not None:
        pairs = list(zip(writings, written, strict=True))
        answer["createdRecords"] = [r.id for w, r in pairs if w.record is None]
        answer["updatedRecords"] = [r.id for w, r in pairs if w.record is not None]
    return answer


def _update_shaped(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and set(record) <= {"id", "fields"}
        and isinstance(record.get("fields"), dict)
    )


def _merge_fields(table: Table, upsert: Any) -> tuple[str, ...]:
    if not isinstance(upsert, dict) or set(upsert) != {"fieldsToMergeOn"}:
        raise _invalid_request()
    names = upsert["fieldsToMergeOn"]
    if not _strings(names):
        raise _invalid_request()
    if not 1 <= len(names) <= MAX_MERGE_FIELDS:
        raise _invalid_request("fieldsToMergeOn must name from 1 to 3 fields.")
    for name in names:
        table.check_field(name)
    return tuple(names)


def _merge_key(fields: Mapping[str, Any], merge_on: Sequence[str]) -> tuple[str, ...]:
    return tuple(_as_text(fields.get(name)) for name in merge_on)


def _refuse_repeated_keys(records: list[dict[str, Any]], merge_on: Sequence[str] | None) -> None:
    if merge_on is None:
        return
    keyed = [record["fields"] for record in records if "id" not in record]
    for fields in keyed:
        missing = [name for name in merge_on if name not in fields]
        if missing:
            raise _invalid_records(
                f'Record is missing a value for "{missing[0]}" in fieldsToMergeOn.'
            )
    keys = [_merge_key(fields, merge_on) for fields in keyed]
    if len(set(keys)) != len(keys):
        raise _invalid_records("Two records in the request have the same fieldsToMergeOn values.")


def _planned(
    state: AirtableState, table: Table, given: dict[str, Any], merge_on: Sequence[str] | None
) -> Writing:
    """The record an update or upsert writes to, found by id or by the merge fields."""
    if "id" in given:
        record = table.records.get(given["id"]) if isinstance(given["id"], str) else None
        if record is None:
            raise _error(
                422, "ROW_DOES_NOT_EXIST", f"Record ID {given['id']} does not exist in this table"
            )
        return _checked_values(state, table, given["fields"], record)
    assert merge_on is not None
    key = _merge_key(given["fields"], merge_on)
    matches = [r for r in table.records.values() if _merge_key(r.fields, merge_on) == key]
    if len(matches) > 1:
        raise _invalid_records(
            f"{len(matches)} records match the fieldsToMergeOn values of one record; "
            "an upsert needs at most one."
        )
    return _checked_values(state, table, given["fields"], matches[0] if matches else None)


def _delete_one(table: Table, record_id: str) -> dict[str, Any]:
    table.record(record_id)
    del table.records[record_id]
    return {"deleted": True, "id": record_id}


def _delete_many(table: Table, params: QueryParams) -> dict[str, Any]:
    record_ids = params.getlist("records[]") + params.getlist("records")
    if not 1 <= len(record_ids) <= MAX_RECORDS_PER_REQUEST:
        raise _invalid_records("You must provide an array of up to 10 record ids.")
    for record_id in record_ids:
        table.record(record_id)
    for record_id in dict.fromkeys(record_ids):
        del table.records[record_id]
    return {"records": [{"deleted": True, "id": record_id} for record_id in record_ids]}


# Requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One API request, parsed as far as routing needs."""

    method: str
    table: Table
    record_id: str | None
    params: QueryParams
    raw_body: bytes

    def body(self) -> dict[str, Any]:
        """The JSON object sent; 400 if it is not JSON, 422 if it is not an object."""
        if not self.raw_body.strip():
            return {}
        try:
            body = json.loads(self.raw_body, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise _error(400, "INVALID_REQUEST_UNKNOWN", "Could not parse request body") from None
        if not isinstance(body, dict):
            raise _invalid_request()
        return body


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass
class Outcome:
    body: dict[str, Any]
    write: bool = False


def _handle_call(state: AirtableState, call: Call) -> Outcome:
    method, record_id = call.method, call.record_id
    if record_id == "listRecords" and method == "POST":
        return Outcome(_list_records(state, call.table, _query_from_body(call.body())))
    if record_id is None and method == "GET":
        return Outcome(_list_records(state, call.table, _query_from_params(call.params)))
    if record_id is None and method == "POST":
        return Outcome(_create(state, call.table, call.body()), write=True)
    if record_id is None and method in ("PATCH", "PUT"):
        replace = method == "PUT"
        return Outcome(_update_many(state, call.table, call.body(), replace=replace), write=True)
    if record_id is None and method == "DELETE":
        return Outcome(_delete_many(call.table, call.params), write=True)
    if record_id is not None and method == "GET":
        return Outcome(call.table.record(record_id).as_json())
    if record_id is not None and method in ("PATCH", "PUT"):
        body, replace = call.body(), method == "PUT"
        return Outcome(_update_one(state, call.table, record_id, body, replace=replace), write=True)
    if record_id is not None and method == "DELETE":
        return Outcome(_delete_one(call.table, record_id), write=True)
    raise _route_not_found()


def _path_segments(request: Request) -> list[str]:
    """The path after ``v0``, decoded segment by segment.

    Read from the raw path because a table name may hold an encoded slash, which the
    decoded path would split in two.
    """
    raw = request.scope.get("raw_path")
    path = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else request.url.path
    segments = [unquote(part) for part in path.split("/") if part]
    return segments[segments.index("v0") + 1 :] if "v0" in segments else []


def _authenticate(state: AirtableState, request: Request) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or token.strip() not in state.tokens:
        raise _error(401, "AUTHENTICATION_REQUIRED", "Authentication required")


def _prepare_call(state: AirtableState, request: Request, raw_body: bytes) -> Call:
    """Auth, base, rate limit and faults, then the table, in the order Airtable checks them."""
    _authenticate(state, request)
    segments = _path_segments(request)
    if len(segments) not in (2, 3):
        raise _route_not_found()
    state.base(segments[0])
    state.admit(segments[0])
    state.inject_faults()
    table = state.table(segments[0], segments[1])
    record_id = segments[2] if len(segments) == 3 else None
    return Call(request.method, table, record_id, request.query_params, raw_body)


async def _serve_api(state: AirtableState, request: Request) -> Response:
    raw_body = await request.body()
    stall = 0.0
    try:
        with state.lock:
            outcome = _handle_call(state, _prepare_call(state, request, raw_body))
            if outcome.write:
                state.writes += 1
                if state.faults.strikes(state.faults.timeout_rate):
                    state.stalls += 1
                    stall = state.faults.stall_seconds
        response: Response = JSONResponse(outcome.body)
    except AirtableError as error:
        response = error.response()
    with state.lock:
        state.statuses[str(response.status_code)] += 1
    if stall:
        # The write is already applied: a client that gives up now leaves a record behind.
        await asyncio.sleep(stall)
    return response


# Control --------------------------------------------------------------------------------


async def _control_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, RecursionError):
        raise ValueError("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _control_routes(state: AirtableState) -> list[Route]:
    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                changes = await _control_body(request)
                with state.lock:
                    state.faults.update(changes)
            except ValueError as exc:
                return JSONResponse({"errors": [str(exc)]}, status_code=422)
        return JSONResponse(state.faults.as_json())

    async def records(request: Request) -> Response:
        base_id, table = request.path_params["base"], request.path_params["table"]
        try:
            return JSONResponse({"records": state.records(base_id, table)})
        except AirtableError as error:
            return error.response()

    async def attachments(request: Request) -> Response:
        return JSONResponse({"urls": state.attachment_urls()})

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats())

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"reset": True})

    return [
        Route("/_emulator/faults", faults, methods=["GET", "PUT"]),
        Route("/_emulator/bases/{base}/tables/{table}/records", records),
        Route("/_emulator/attachments", attachments),
        Route("/_emulator/stats", stats),
        Route("/_emulator/reset", reset, methods=["POST"]),
    ]


def create_airtable_emulator(
    *,
    tokens: Iterable[str] = (DEFAULT_TOKEN,),
    bases: Mapping[str, Mapping[str, Iterable[str]]] | None = None,
    requests_per_second: int = 5,
    penalty_seconds: float = 30.0,
    faults: Faults | None = None,
) -> Starlette:
    """The emulator's ASGI app; ``emulator_state(app)`` is its state.

    ``bases`` maps each base id to its tables and each table to its field names; by default
    one base, ``DEFAULT_BASE_ID``, with a ``Users`` table of ``DEFAULT_USER_FIELDS``.
    """
    state = AirtableState(
        tokens=tokens,
        bases=bases
        if bases is not None
        else {DEFAULT_BASE_ID: {DEFAULT_TABLE: DEFAULT_USER_FIELDS}},
        requests_per_second=requests_per_second,
        penalty_seconds=penalty_seconds,
        faults=faults if faults is not None else Faults(),
    )

    async def api(request: Request) -> Response:
        return await _serve_api(state, request)

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    app = Starlette(
        routes=[*_control_routes(state), Route("/v0/{path:path}", api, methods=methods)]
    )
    app.state.airtable = state
    return app


def emulator_state(app: Starlette) -> AirtableState:
    """The state behind an app made by ``create_airtable_emulator``."""
    state = app.state.airtable
    if not isinstance(state, AirtableState):
        raise TypeError("this app was not made by create_airtable_emulator")
    return state


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="The Airtable Web API emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument(
        "--token", action="append", help=f"accepted token (default {DEFAULT_TOKEN})"
    )
    parser.add_argument("--requests-per-second", type=int, default=5)
    parser.add_argument("--penalty-seconds", type=float, default=30.0)
    args = parser.parse_args()
    app = create_airtable_emulator(
        tokens=args.token or (DEFAULT_TOKEN,),
        requests_per_second=args.requests_per_second,
        penalty_seconds=args.penalty_seconds,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
