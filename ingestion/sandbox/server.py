"""The sandbox's fake Shopify Admin REST and Klaviyo JSON:API, served from the world on disk.

One real HTTP server on loopback (stdlib ``ThreadingHTTPServer``) serves ``<root>/world/`` with each
service's own protocol, so the dlt connectors run unchanged against the real services and the fake:

- Shopify Admin REST under ``/admin/api/<YYYY-MM>/``: ``customers``, ``orders``, ``products`` and
  ``checkouts`` (``.json``, ``/count.json`` and ``/<id>.json``), ``X-Shopify-Access-Token`` auth,
  ``limit`` <= 250, ``Link``-header ``page_info`` cursors, ``created_at``/``updated_at`` min/max,
  ``since_id``, ``ids``, ``fields``, the order ``status`` filter (default ``open``, as in the real API),
  and a leaky bucket per token like the standard plan's (40 calls, draining 2 per second;
  ``X-Shopify-Shop-Api-Call-Limit: n/40``, ``429`` + ``Retry-After: 2.0`` when full).
- Klaviyo JSON:API under ``/api/``: ``profiles``, ``events``, ``metrics``, ``campaigns``, ``lists`` (and
  ``/<id>``), list memberships (``/lists/<id>/relationships/profiles``: page size 20 by default, at most
  100, ``filter`` on ``joined_group_at``/``email``/``phone_number``, ``sort=[-]joined_group_at``, else in
  profile id order), ``Authorization: Klaviyo-API-Key`` auth, a required ``revision`` header,
  ``links.next`` cursors, ``filter`` expressions, ``sort``, ``include`` (events),
  ``additional-fields[profile]``, sparse ``fields[<type>]``, and burst/steady rate limits per key
  (``429`` + ``Retry-After``).

Faults (:class:`Faults`, default none; ``SandboxServer(faults=...)``, else the environment variable
``SHOP360_SANDBOX_FAULTS`` such as ``error_rate=0.1,slow_rate=0.05,slow_seconds=0.5,drop_connections=1,
drift_rate=0.05,missing_id_rate=0.01,seed=7``, else none) turn the fake into a test bench for the
connectors' production behaviour:

- ``error_rate``: that share of authenticated list requests (Shopify ``<resource>.json``, Klaviyo
  collections and list memberships; never counts or single records) is answered with an error
  instead, each service's own: half ``429`` (Shopify ``Retry-After: 2.0`` and its "Exceeded 2 calls
  per second" body; Klaviyo an integer ``Retry-After`` and a JSON:API ``throttled`` error), half
  ``500``/``503`` (Shopify ``{"errors": "..."}``, Klaviyo JSON:API error objects).
- ``drop_connections``: the first N list responses of ``200`` whose body exceeds
  ``DROP_MIN_BODY_BYTES`` are cut: status line and headers (with the full ``Content-Length``), half
  the body, then the connection is closed, as when a connection drops mid-page.
- **The retry bound**: a URL (path and query as sent) is never answered with more than
  ``MAX_CONSECUTIVE_FAILURES`` = 3 injected failures (errors and cut connections together) in a row;
  the next request for it is served. A client that retries each request ~5 times always gets
  through. (Real throttling by the rate limits above comes on top: it ends when the client waits.)
- ``slow_rate``/``slow_seconds``: that share of all responses is sent ``slow_seconds`` late.
- ``drift_rate``: that share of served records carries one field the connectors have never seen:
  Shopify orders and customers ``"merchant_business_entity_id": "MBE-..."``, Klaviyo profiles the
  attribute ``"predictive_flag": true``.
- ``missing_id_rate``: that share of served Shopify orders and customers lacks its ``id`` (a
  malformed record). Pagination is unaffected: cursors carry the stored ids.

Errors, slowness and drops are drawn from ``random.Random`` streams seeded with ``seed`` behind a lock,
so one sequence of requests meets the same faults every time (as far as concurrent requests arrive
in the same order). Drift and missing ids are decided per record by a hash of ``seed``, table and id:
the same record is served the same way on every page, every request and every run.
``SandboxServer.fault_counts`` and ``SandboxServer.missing_id_ids(table)`` report what was injected.

The world is loaded once into memory at start: per record its raw JSON bytes (written verbatim into
responses) plus the few columns that filtering and sorting need, all ordered by ``id``, and each
Klaviyo collection's order by every column it can be sorted by. As an index would, a lower bound
on the time column a Klaviyo walk is sorted by starts the walk at the bound. Request
headers are never logged (they carry the secrets) and per-request logging is silent.

Run it in the foreground with ``python -m ingestion.sandbox.server [--root DIR] [--port N] [--faults SPEC]``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import math
import os
import random
import re
import socket
import threading
import time
import uuid
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ingestion import paths

LOG = logging.getLogger(__name__)

SHOPIFY_API_VERSION = "2025-10"
KLAVIYO_REVISION_EXAMPLE = "2025-10-15"
DEFAULT_CLI_PORT = 8765
HANDLER_IDLE_TIMEOUT_SECONDS = 60
SHUTDOWN_POLL_SECONDS = 0.05

JSON_TYPE = "application/json; charset=utf-8"
JSONAPI_TYPE = "application/vnd.api+json"

# --- Shopify -----------------------------------------------------------------------------------------
SHOPIFY_ROUTE = re.compile(
    r"^/admin/api/(?P<version>\d{4}-\d{2}|unstable)/(?P<resource>[a-z_]+)(?:/(?P<member>count|\d+))?\.json$"
)
SHOPIFY_DEFAULT_LIMIT = 50
SHOPIFY_MAX_LIMIT = 250
SHOPIFY_TIME_FILTERS: dict[str, tuple[str, str]] = {
    "created_at_min": ("created_at", ">="),
    "created_at_max": ("created_at", "<="),
    "updated_at_min": ("updated_at", ">="),
    "updated_at_max": ("updated_at", "<="),
}
SHOPIFY_FILTER_PARAMS = ("ids", "since_id", "status", *SHOPIFY_TIME_FILTERS)
SHOPIFY_PAGE_INFO_COMPANIONS = frozenset({"page_info", "limit", "fields"})
SHOPIFY_UNAUTHORIZED = "[API] Invalid API key or access token (unrecognized login or wrong password)"
SHOPIFY_THROTTLED = (
    "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
)
SHOPIFY_CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
SHOPIFY_RETRY_AFTER = "2.0"  # Shopify always sends this float string with a 429
SHOPIFY_DEFAULT_BUCKET_SIZE = 40  # the standard plan's leaky bucket
KLAVIYO_DEFAULT_BURST_PER_SECOND = 1000
KLAVIYO_DEFAULT_STEADY_PER_MINUTE = 60000
SHOPIFY_DEFAULT_LEAK_PER_SECOND = 2.0

# --- Klaviyo -----------------------------------------------------------------------------------------
KLAVIYO_ROUTE = re.compile(r"^/api/(?P<resource>[a-z-]+)(?:/(?P<member>[^/]+))?/?$")
KLAVIYO_LIST_PROFILES_ROUTE = re.compile(r"^/api/lists/(?P<list_id>[^/]+)/relationships/profiles/?$")
KLAVIYO_AUTH_SCHEME = "Klaviyo-API-Key "
KLAVIYO_REVISION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
KLAVIYO_UNAUTHENTICATED = {
    "status": 401,
    "code": "not_authenticated",
    "title": "Authentication credentials were not provided.",
    "detail": "Missing or invalid private key.",
    "source": {"pointer": "/data/"},
}
KLAVIYO_COMPARISONS = {
    "greater-than": ">",
    "greater-or-equal": ">=",
    "less-than": "<",
    "less-or-equal": "<=",
    "equals": "==",
}
FOREIGN_CURSOR = "is not a cursor issued by this server (copy it from the previous response's link)"
OPERATOR_NAME = re.compile(r"[a-z-]+")
NOT_FOUND = object()  # sentinel for a missing JSON path

# --- Faults ------------------------------------------------------------------------------------------
FAULTS_ENV_VAR = "SHOP360_SANDBOX_FAULTS"
MAX_CONSECUTIVE_FAILURES = 3  # injected failures in a row for one URL, at most
DROP_MIN_BODY_BYTES = 4096  # only list responses bigger than this are cut
KLAVIYO_FAULT_RETRY_AFTER = 1
SHOPIFY_DRIFT_FIELD = "merchant_business_entity_id"
SHOPIFY_DRIFT_TABLES = frozenset({"orders", "customers"})
SHOPIFY_MISSING_ID_TABLES = frozenset({"orders", "customers"})
KLAVIYO_DRIFT_ATTRIBUTE = "predictive_flag"
KLAVIYO_DRIFT_TABLES = frozenset({"profiles"})

Predicate = Callable[[int], bool]


class ParamError(ValueError):
    """A request parameter (or header) is missing or invalid; ``param`` names it."""

    def __init__(self, param: str, message: str, *, header: bool = False) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message
        self.header = header


# =====================================================================================================
# The world in memory
# =====================================================================================================


@dataclass(frozen=True)
class ColumnSpec:
    """A column kept per record for filtering/sorting: ``time`` (epoch seconds, NaN if none) or ``text``."""

    name: str
    kind: str
    path: tuple[str, ...]
    default: Any = None


@dataclass
class Table:
    """One resource: raw JSON bytes per record ordered by ``id``, plus its filter/sort columns."""

    name: str
    ids: Sequence[Any]
    raw: list[bytes]
    columns: dict[str, Sequence[Any]]
    side: list[bytes | None] | None = None  # an attribute served only on request (profile subscriptions)
    _sort_orders: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def find(self, record_id: Any) -> int | None:
        """Index of the record with this id, or ``None``."""
        index = bisect_left(self.ids, record_id)
        return index if index < len(self.ids) and self.ids[index] == record_id else None

    def sort_key(self, column: str) -> Callable[[int], tuple[Any, Any]]:
        """Total order of records for ``column``: (value with nulls first, id)."""
        ids = self.ids
        if column == "id":
            return lambda i: (0, ids[i])
        values = self.columns[column]
        if isinstance(values, array):
            return lambda i: (-math.inf if values[i] != values[i] else values[i], ids[i])
        return lambda i: ("" if values[i] is None else values[i], ids[i])

    def sort_order(self, column: str) -> Sequence[int]:
        """Record indexes ascending by ``column`` (then id); computed once per column."""
        if column == "id":
            return range(len(self))
        with self._lock:
            order = self._sort_orders.get(column)
            if order is None:
                order = sorted(range(len(self)), key=self.sort_key(column))
                self._sort_orders[column] = order
            return order


@dataclass
class World:
    """Everything the fake APIs serve, loaded from ``<root>/world/``."""

    meta: dict[str, Any]
    shop_timezone: tzinfo
    shopify: dict[str, Table]
    klaviyo: dict[str, Table]
    list_members: dict[str, Table] = field(default_factory=dict)  # list id -> its profiles


def parse_instant(text: str, default_tz: tzinfo = UTC) -> float:
    """Epoch seconds of an ISO 8601 timestamp; naive values are read in ``default_tz``.

    A ``+`` sent unencoded in a query string arrives as a space (``...T10:00:00 01:00``): repaired.
    """
    value = re.sub(r" (\d{2}:?\d{2})$", r"+\1", text.strip())
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=default_tz)
    return moment.timestamp()


def _dig(record: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(record, dict) or key not in record:
            return NOT_FOUND
        record = record[key]
    return record


def _time_value(value: Any, tz: tzinfo) -> float:
    if isinstance(value, bool) or value is None or value is NOT_FOUND:
        return math.nan
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_instant(str(value), tz)
    except ValueError:
        return math.nan


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _coerce_id(value: Any, id_type: type) -> Any:
    if id_type is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return None
    return value if isinstance(value, str) and value else None


class _TableBuilder:
    """Accumulates records of one file: ids, raw bytes, columns and the split-off attribute."""

    def __init__(self, columns: Sequence[ColumnSpec], tz: tzinfo, split_attribute: str | None) -> None:
        self.columns = columns
        self.tz = tz
        self.split_attribute = split_attribute
        self.ids: list[Any] = []
        self.raw: list[bytes] = []
        self.side: list[bytes | None] = []
        self.values: dict[str, list[Any]] = {spec.name: [] for spec in columns}
        self._interned: dict[str, str] = {}

    def add(self, record_id: Any, record: dict[str, Any], line: bytes) -> None:
        for spec in self.columns:
            value = _dig(record, spec.path)
            if spec.kind == "time":
                self.values[spec.name].append(_time_value(value, self.tz))
                continue
            text = spec.default if value is NOT_FOUND or value is None else str(value)
            self.values[spec.name].append(None if text is None else self._interned.setdefault(text, text))
        if self.split_attribute is not None:
            attributes = record.get("attributes")
            if isinstance(attributes, dict) and self.split_attribute in attributes:
                self.side.append(_encode(attributes.pop(self.split_attribute)))
                line = _encode(record)
            else:
                self.side.append(None)
        self.ids.append(record_id)
        self.raw.append(line)

    def build(self, name: str, id_type: type) -> Table:
        ids = self.ids
        if any(ids[i] > ids[i + 1] for i in range(len(ids) - 1)):  # the README promises id order; be safe
            order = sorted(range(len(ids)), key=ids.__getitem__)
            ids, self.raw = [ids[i] for i in order], [self.raw[i] for i in order]
            self.side = [self.side[i] for i in order] if self.side else self.side
            self.values = {key: [column[i] for i in order] for key, column in self.values.items()}
        columns: dict[str, Sequence[Any]] = {
            spec.name: array("d", self.values[spec.name]) if spec.kind == "time" else self.values[spec.name]
            for spec in self.columns
        }
        return Table(
            name=name,
            ids=array("q", ids) if id_type is int else ids,
            raw=self.raw,
            columns=columns,
            side=self.side if self.split_attribute is not None else None,
        )


def _read_jsonl(path: Path) -> Iterator[tuple[int, bytes, Any]]:
    """(line number, stripped line, parsed JSON) per non-empty line; invalid JSON is logged and skipped."""
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                yield line_number, line, json.loads(line)
            except ValueError as error:
                LOG.warning("%s:%d is not valid JSON (%s); skipped", path, line_number, error)


def load_table(
    path: Path,
    name: str,
    id_type: type,
    columns: Sequence[ColumnSpec],
    tz: tzinfo,
    split_attribute: str | None = None,
) -> Table:
    """Read one ``.jsonl`` file; a missing file is an empty table, a record without a usable id is skipped."""
    builder = _TableBuilder(columns, tz, split_attribute)
    if not path.exists():
        LOG.warning("sandbox world has no %s; serving %s as empty", path, name)
        return builder.build(name, id_type)
    for line_number, line, record in _read_jsonl(path):
        record_id = _coerce_id(record.get("id") if isinstance(record, dict) else None, id_type)
        if record_id is None:
            LOG.warning("%s:%d has no usable id; skipped", path, line_number)
            continue
        builder.add(record_id, record, line)
    return builder.build(name, id_type)


# =====================================================================================================
# Resource catalogues
# =====================================================================================================


def _time(name: str, *path: str) -> ColumnSpec:
    return ColumnSpec(name, "time", path or (name,))


def _text(name: str, *path: str, default: str | None = None) -> ColumnSpec:
    return ColumnSpec(name, "text", path or (name,), default)


@dataclass(frozen=True)
class ShopifyResource:
    """A Shopify list endpoint: its JSON keys, its columns and its ``status`` filter (default first)."""

    name: str
    singular: str
    columns: tuple[ColumnSpec, ...]
    statuses: tuple[str, ...] = ()


SHOPIFY_BASE_COLUMNS = (_time("created_at"), _time("updated_at"))
SHOPIFY_RESOURCES: dict[str, ShopifyResource] = {
    "customers": ShopifyResource("customers", "customer", SHOPIFY_BASE_COLUMNS),
    "orders": ShopifyResource(
        "orders",
        "order",
        (*SHOPIFY_BASE_COLUMNS, _time("cancelled_at"), _time("closed_at")),
        statuses=("open", "closed", "cancelled", "any"),
    ),
    "products": ShopifyResource("products", "product", SHOPIFY_BASE_COLUMNS),
    "checkouts": ShopifyResource(
        "checkouts", "checkout", (*SHOPIFY_BASE_COLUMNS, _time("closed_at")), statuses=("open", "closed")
    ),
}

TIME_OPERATORS = frozenset({"greater-than", "greater-or-equal", "less-than", "less-or-equal", "equals"})
TEXT_OPERATORS = frozenset({"equals", "any"})


@dataclass(frozen=True)
class KlaviyoResource:
    """A Klaviyo collection: its JSON:API type, page sizes, columns, filterable fields, sorts, includes."""

    name: str
    type: str
    default_page_size: int
    max_page_size: int
    columns: tuple[ColumnSpec, ...]
    sorts: frozenset[str]
    includes: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # include -> (column, table)
    required_filter: str | None = None
    split_attribute: str | None = None

    def filter_operators(self, field_name: str) -> frozenset[str] | None:
        """Operators allowed on ``field_name``, or ``None`` when it cannot be filtered on."""
        if field_name == "id":
            return TEXT_OPERATORS
        for spec in self.columns:
            if spec.name == field_name:
                return TIME_OPERATORS if spec.kind == "time" else TEXT_OPERATORS
        return None


KLAVIYO_RESOURCES: dict[str, KlaviyoResource] = {
    "profiles": KlaviyoResource(
        "profiles",
        "profile",
        20,
        100,
        columns=(
            _text("email", "attributes", "email"),
            _text("phone_number", "attributes", "phone_number"),
            _text("external_id", "attributes", "external_id"),
            _time("created", "attributes", "created"),
            _time("updated", "attributes", "updated"),
        ),
        sorts=frozenset({"id", "created", "updated", "email"}),
        split_attribute="subscriptions",
    ),
    "events": KlaviyoResource(
        "events",
        "event",
        200,
        200,
        columns=(
            _time("datetime", "attributes", "datetime"),
            _time("timestamp", "attributes", "timestamp"),
            _text("metric_id", "relationships", "metric", "data", "id"),
            _text("profile_id", "relationships", "profile", "data", "id"),
        ),
        sorts=frozenset({"id", "datetime", "timestamp"}),
        includes={"metric": ("metric_id", "metrics"), "profile": ("profile_id", "profiles")},
    ),
    "metrics": KlaviyoResource(
        "metrics",
        "metric",
        200,
        200,
        columns=(_text("name", "attributes", "name"),),
        sorts=frozenset({"id"}),
    ),
    "campaigns": KlaviyoResource(
        "campaigns",
        "campaign",
        10,
        10,
        columns=(
            _text("messages.channel", "attributes", "channel", default="email"),
            _text("status", "attributes", "status"),
            _text("name", "attributes", "name"),
            _time("created_at", "attributes", "created_at"),
            _time("updated_at", "attributes", "updated_at"),
            _time("scheduled_at", "attributes", "scheduled_at"),
        ),
        sorts=frozenset({"id", "name", "created_at", "updated_at", "scheduled_at"}),
        required_filter="messages.channel",
    ),
    "lists": KlaviyoResource(
        "lists",
        "list",
        10,
        10,
        columns=(
            _text("name", "attributes", "name"),
            _time("created", "attributes", "created"),
            _time("updated", "attributes", "updated"),
        ),
        sorts=frozenset({"id", "name", "created", "updated"}),
    ),
}


# The members of one list (``/api/lists/<id>/relationships/profiles``): a table per list whose ids are
# profile ids and whose raw records are the relationship's resource identifiers.
KLAVIYO_LIST_PROFILES = KlaviyoResource(
    "list_memberships",
    "profile",
    20,
    100,
    columns=(_time("joined_group_at"), _text("email"), _text("phone_number")),
    sorts=frozenset({"joined_group_at"}),
)


def _shop_timezone(meta: Mapping[str, Any]) -> tzinfo:
    name = meta.get("timezone") or "UTC"
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        LOG.warning("meta.json timezone %r is unknown; naive Shopify timestamps are read as UTC", name)
        return UTC


def load_list_members(path: Path, lists: Table, profiles: Table) -> dict[str, Table]:
    """``list_memberships.jsonl`` as one table per list of ``lists`` (a list without members is empty).

    A line without ``list_id``/``profile_id``, for a list that does not exist or repeating a membership
    is logged and skipped.
    """
    members: dict[str, dict[str, str | None]] = {list_id: {} for list_id in lists.ids}
    if not path.exists():
        LOG.warning("sandbox world has no %s; every list is served without members", path)
    else:
        for line_number, _, record in _read_jsonl(path):
            list_id = _coerce_id(record.get("list_id"), str) if isinstance(record, dict) else None
            profile_id = _coerce_id(record.get("profile_id"), str) if isinstance(record, dict) else None
            if list_id is None or profile_id is None:
                LOG.warning("%s:%d has no usable list_id and profile_id; skipped", path, line_number)
            elif list_id not in members:
                LOG.warning("%s:%d is for list %s, which does not exist; skipped", path, line_number, list_id)
            elif profile_id in members[list_id]:
                LOG.warning("%s:%d repeats a membership; skipped", path, line_number)
            else:
                joined = record.get("joined")
                members[list_id][profile_id] = joined if isinstance(joined, str) else None
    emails, phones = profiles.columns["email"], profiles.columns["phone_number"]
    tables = {}
    for list_id, joined_by_profile in members.items():
        builder = _TableBuilder(KLAVIYO_LIST_PROFILES.columns, UTC, None)
        for profile_id in sorted(joined_by_profile):
            index = profiles.find(profile_id)
            record = {
                "joined_group_at": joined_by_profile[profile_id],
                "email": emails[index] if index is not None else None,
                "phone_number": phones[index] if index is not None else None,
            }
            builder.add(profile_id, record, _encode({"type": "profile", "id": profile_id}))
        tables[list_id] = builder.build(KLAVIYO_LIST_PROFILES.name, str)
    return tables


def load_world(world_dir: Path) -> World:
    """Load every Shopify and Klaviyo file of the world (see ``ingestion/sandbox/README.md``)."""
    meta_path = world_dir / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    shop_tz = _shop_timezone(meta)
    started = time.perf_counter()
    shopify = {
        name: load_table(world_dir / "shopify" / f"{name}.jsonl", name, int, spec.columns, shop_tz)
        for name, spec in SHOPIFY_RESOURCES.items()
    }
    klaviyo = {
        name: load_table(
            world_dir / "klaviyo" / f"{name}.jsonl",
            name,
            str,
            spec.columns,
            UTC,
            split_attribute=spec.split_attribute,
        )
        for name, spec in KLAVIYO_RESOURCES.items()
    }
    # the sort orders Klaviyo's indexes keep: made now, not by the first request that sorts (sorting
    # 2.3 million events by datetime takes about a second, which a client would wrongly be timed for)
    for name, spec in KLAVIYO_RESOURCES.items():
        for column in spec.sorts & klaviyo[name].columns.keys():
            klaviyo[name].sort_order(column)
    list_members = load_list_members(
        world_dir / "klaviyo" / "list_memberships.jsonl", klaviyo["lists"], klaviyo["profiles"]
    )
    counts = ", ".join(f"{name}={len(table)}" for name, table in {**shopify, **klaviyo}.items())
    counts += f", list_memberships={sum(len(table) for table in list_members.values())}"
    LOG.info("sandbox world loaded from %s in %.1fs: %s", world_dir, time.perf_counter() - started, counts)
    return World(
        meta=meta, shop_timezone=shop_tz, shopify=shopify, klaviyo=klaviyo, list_members=list_members
    )


# =====================================================================================================
# Paging over a table (shared by both services)
# =====================================================================================================


@dataclass(frozen=True)
class Window:
    """One page of record indexes, and whether records remain after / before it."""

    indexes: list[int]
    has_next: bool
    has_prev: bool


def _scan(
    order: Sequence[int], lo: int, hi: int, start: int, step: int, predicate: Predicate | None, want: int
) -> list[int]:
    """Walk ``order`` from position ``start`` by ``step`` within [lo, hi), collecting ``want`` matches."""
    found: list[int] = []
    position = start
    while lo <= position < hi and len(found) < want:
        index = order[position]
        if predicate is None or predicate(index):
            found.append(index)
        position += step
    return found


def page_window(
    order: Sequence[int],
    key: Callable[[int], Any],
    size: int,
    predicate: Predicate | None,
    *,
    cursor: tuple[str, Any] | None = None,
    descending: bool = False,
    lo: int = 0,
) -> Window:
    """Keyset paging: the page after (``"n"``) or before (``"p"``) the cursor key in ``order``.

    Every record matching ``predicate`` is served exactly once across the pages of one walk.
    """
    hi = len(order)
    if cursor is None:
        start, step = (hi - 1, -1) if descending else (lo, 1)
    else:
        direction, cursor_key = cursor
        if (direction == "n") != descending:
            start, step = bisect_right(order, cursor_key, lo, hi, key=key), 1
        else:
            start, step = bisect_left(order, cursor_key, lo, hi, key=key) - 1, -1
    found = _scan(order, lo, hi, start, step, predicate, size + 1)
    more = len(found) > size
    found = found[:size]
    if cursor is not None and cursor[0] == "p":
        found.reverse()
        return Window(found, has_next=True, has_prev=more)
    return Window(found, has_next=more, has_prev=cursor is not None)


def _and(predicates: list[Predicate]) -> Predicate | None:
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]
    return lambda i: all(predicate(i) for predicate in predicates)


def _compare(values: Sequence[Any], operator: str, operand: Any) -> Predicate:
    if operator == ">":
        return lambda i: values[i] > operand
    if operator == ">=":
        return lambda i: values[i] >= operand
    if operator == "<":
        return lambda i: values[i] < operand
    if operator == "<=":
        return lambda i: values[i] <= operand
    if operator == "==":
        return lambda i: values[i] == operand
    if operator == "in":
        return lambda i: values[i] in operand
    raise ValueError(f"unknown comparison {operator!r}")


def _first_at_or_above(
    order: Sequence[int], key: Callable[[int], Any], conditions: Iterable[Condition], sort_field: str
) -> int:
    """Where in ``order`` (ascending by the time column ``sort_field``) the records a lower bound on
    that column lets through begin, as an index would: the page scan starts there instead of
    testing every older record (0 without such a bound)."""
    start = 0
    for condition in conditions:
        if condition.field == sort_field and KLAVIYO_COMPARISONS.get(condition.operator) in (">", ">="):
            value = condition.value
            bound = value.epoch if isinstance(value, Instant) else value
            if isinstance(bound, float):
                # (bound, "") sorts before every record whose value is the bound (ids are text)
                start = max(start, bisect_left(order, (bound, ""), key=key))
    return start


def encode_cursor(payload: Mapping[str, Any]) -> str:
    """An opaque, URL-safe cursor token."""
    return base64.urlsafe_b64encode(_encode(payload)).decode().rstrip("=")


def decode_cursor(token: str, param: str) -> dict[str, Any]:
    """The payload of a token from :func:`encode_cursor`; ``ParamError`` naming ``param`` if it is not one."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as error:
        raise ParamError(param, FOREIGN_CURSOR) from error
    if not isinstance(payload, dict) or payload.get("d") not in ("n", "p"):
        raise ParamError(param, FOREIGN_CURSOR)
    return payload


def _positive_int(params: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise ParamError(name, f"must be an integer between 1 and {maximum} (got {text!r})")
    return value


# =====================================================================================================
# Rate limits
# =====================================================================================================


class LeakyBucket:
    """Shopify's leaky bucket per token: each call adds 1, the bucket drains ``leak_per_second``.

    A call that does not fit is refused with ``429`` and ``Retry-After: 2.0``, whatever the real wait:
    that is what Shopify sends.
    """

    def __init__(self, size: int, leak_per_second: float) -> None:
        self.size = size
        self.leak_per_second = leak_per_second
        self._levels: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> tuple[bool, int, float]:
        """(allowed, calls now in the bucket, seconds until one more call fits)."""
        now = time.monotonic()
        with self._lock:
            level, last = self._levels.get(key, (0.0, now))
            level = max(0.0, level - (now - last) * self.leak_per_second)
            if level + 1 > self.size + 1e-9:
                self._levels[key] = (level, now)
                wait = (level + 1 - self.size) / self.leak_per_second
                return False, self.size, wait
            level += 1
            self._levels[key] = (level, now)
            return True, min(self.size, math.ceil(level - 1e-9)), 0.0


class SlidingWindowLimiter:
    """Klaviyo-style limits per key: at most ``count`` requests in any ``seconds`` window, for each window."""

    def __init__(self, windows: Sequence[tuple[int, float]]) -> None:
        self.windows = tuple(windows)
        self._history: dict[str, list[deque[float]]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """``None`` if the request may proceed (and counts it), else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            history = self._history.setdefault(key, [deque() for _ in self.windows])
            wait = 0.0
            for (count, seconds), stamps in zip(self.windows, history, strict=True):
                while stamps and stamps[0] <= now - seconds:
                    stamps.popleft()
                if len(stamps) >= count:
                    wait = max(wait, stamps[0] + seconds - now)
            if wait > 0:
                return wait
            for stamps in history:
                stamps.append(now)
            return None


# =====================================================================================================
# Faults
# =====================================================================================================


_FAULT_PARSERS: dict[str, Callable[[str], Any]] = {
    "error_rate": float,
    "slow_rate": float,
    "slow_seconds": float,
    "drop_connections": int,
    "drift_rate": float,
    "missing_id_rate": float,
    "seed": int,
}


@dataclass(frozen=True)
class Faults:
    """What goes wrong on purpose (see the module docstring); the default is nothing.

    ``Faults.parse("error_rate=0.1,slow_rate=0.05,slow_seconds=0.5,drop_connections=1,drift_rate=0.05,
    missing_id_rate=0.01,seed=7")`` reads the form the environment variable ``SHOP360_SANDBOX_FAULTS``
    and the CLI's ``--faults`` take; :meth:`spec` writes it.
    """

    error_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.5
    drop_connections: int = 0
    drift_rate: float = 0.0
    missing_id_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("error_rate", "slow_rate", "drift_rate", "missing_id_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"fault setting {name} must be a share between 0 and 1, got {value!r}")
        if (
            isinstance(self.slow_seconds, bool)
            or not isinstance(self.slow_seconds, int | float)
            or not 0.0 <= self.slow_seconds < math.inf
        ):
            raise ValueError(
                f"fault setting slow_seconds must be 0 or more seconds, got {self.slow_seconds!r}"
            )
        for name in ("drop_connections", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"fault setting {name} must be an integer, got {value!r}")
        if self.drop_connections < 0:
            raise ValueError(f"fault setting drop_connections must be 0 or more, got {self.drop_connections}")

    @classmethod
    def parse(cls, text: str) -> Faults:
        """Faults from ``name=value`` pairs separated by commas (``""``: none); ``ValueError`` if bad."""
        values: dict[str, Any] = {}
        for part in text.split(","):
            if not part.strip():
                continue
            name, sep, value = (piece.strip() for piece in part.partition("="))
            if not sep or name not in _FAULT_PARSERS:
                raise ValueError(
                    f"fault setting {part.strip()!r} is not name=value with a name among "
                    f"{', '.join(_FAULT_PARSERS)}"
                )
            if name in values:
                raise ValueError(f"fault setting {name} is given twice")
            try:
                values[name] = _FAULT_PARSERS[name](value)
            except ValueError:
                kind = "an integer" if _FAULT_PARSERS[name] is int else "a number"
                raise ValueError(f"fault setting {name} must be {kind}, got {value!r}") from None
        return cls(**values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Faults:
        """Faults from ``SHOP360_SANDBOX_FAULTS`` (none when it is unset or empty)."""
        text = (os.environ if environ is None else environ).get(FAULTS_ENV_VAR, "")
        try:
            return cls.parse(text)
        except ValueError as error:
            raise ValueError(f"{FAULTS_ENV_VAR}: {error}") from None

    def spec(self) -> str:
        """The settings that differ from the default, in the form :meth:`parse` reads ("" for none)."""
        default = Faults()
        return ",".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        )

    @property
    def active(self) -> bool:
        """Whether anything goes wrong at all."""
        return bool(
            self.error_rate
            or self.slow_rate
            or self.drop_connections
            or self.drift_rate
            or self.missing_id_rate
        )


def _share_of(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` (the same on every platform and run)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class FaultInjector:
    """Draws and counts the faults of one server; every method is thread-safe."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._lock = threading.Lock()
        self._error_draws = random.Random(f"{faults.seed}:errors")
        self._slow_draws = random.Random(f"{faults.seed}:slow")
        self._streaks: dict[str, int] = {}  # URL -> injected failures in a row
        self._counts: Counter[str] = Counter()
        self._drifted: set[tuple[str, Any]] = set()
        self._missing: dict[str, set[int]] = {table: set() for table in sorted(SHOPIFY_MISSING_ID_TABLES)}

    # -- per request ----------------------------------------------------------------------------------
    def injected_error(self, url: str) -> int | None:
        """429, 500 or 503 when this list request is to fail instead, else ``None`` (then call ``settle``)."""
        if self.faults.error_rate <= 0:
            return None
        with self._lock:
            hit = self._error_draws.random() < self.faults.error_rate
            kind = self._error_draws.random()
            streak = self._streaks.get(url, 0)
            if not hit or streak >= MAX_CONSECUTIVE_FAILURES:
                return None
            self._streaks[url] = streak + 1
            status = 429 if kind < 0.5 else 500 if kind < 0.75 else 503
            self._counts["errors_429" if status == 429 else "errors_5xx"] += 1
            return status

    def settle(self, url: str, response: Response) -> None:
        """A list request was answered: cut the connection if a drop is due, else end the URL's streak."""
        with self._lock:
            streak = self._streaks.pop(url, 0)
            if (
                response.status == 200
                and len(response.body) > DROP_MIN_BODY_BYTES
                and self._counts["dropped"] < self.faults.drop_connections
                and streak < MAX_CONSECUTIVE_FAILURES
            ):
                self._counts["dropped"] += 1
                self._streaks[url] = streak + 1
                response.cut = True

    def delay(self) -> float:
        """Seconds to hold this response back (0 for most)."""
        if self.faults.slow_rate <= 0:
            return 0.0
        with self._lock:
            if self._slow_draws.random() >= self.faults.slow_rate:
                return 0.0
            self._counts["slowed"] += 1
        return self.faults.slow_seconds

    # -- per record -----------------------------------------------------------------------------------
    def _verdict(self, kind: str, table: str, record_id: Any, rate: float) -> bool:
        return _share_of(f"{self.faults.seed}:{kind}:{table}:{record_id}") < rate

    def drifts(self, table: str, record_id: Any) -> bool:
        """Whether this record is served with an unknown extra field."""
        rate = self.faults.drift_rate
        return rate > 0 and self._verdict("drift", table, record_id, rate)

    def lacks_id(self, table: str, record_id: Any) -> bool:
        """Whether this Shopify record is served without its ``id``."""
        rate = self.faults.missing_id_rate
        return rate > 0 and table in SHOPIFY_MISSING_ID_TABLES and self._verdict("id", table, record_id, rate)

    def drift_value(self, record_id: Any) -> str:
        """The unknown field's value for a drifting Shopify record (fixed by seed and id)."""
        digest = hashlib.blake2b(f"{self.faults.seed}:mbe:{record_id}".encode(), digest_size=5)
        return f"MBE-{digest.hexdigest().upper()}"

    def served_drifted(self, table: str, record_id: Any) -> None:
        with self._lock:
            self._drifted.add((table, record_id))

    def served_without_id(self, table: str, record_id: int) -> None:
        with self._lock:
            self._missing[table].add(record_id)

    # -- reports --------------------------------------------------------------------------------------
    def counts(self) -> dict[str, Any]:
        with self._lock:
            return {
                "errors_429": self._counts["errors_429"],
                "errors_5xx": self._counts["errors_5xx"],
                "slowed": self._counts["slowed"],
                "dropped": self._counts["dropped"],
                "drifted_records": len(self._drifted),
                "missing_id_records": {table: len(ids) for table, ids in self._missing.items()},
            }

    def missing_ids(self, table: str) -> set[int]:
        if table not in self._missing:
            raise ValueError(
                f"only {', '.join(sorted(self._missing))} records are served without id, not {table!r}"
            )
        with self._lock:
            return set(self._missing[table])


# =====================================================================================================
# Requests and responses
# =====================================================================================================


@dataclass
class Request:
    """What the API logic needs from an HTTP request (headers stay in here; never logged)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Mapping[str, str]
    origin: str  # scheme://host[:port] the client used, for links

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)

    @property
    def target(self) -> str:
        """Path and query, as the fault injector tells requests for the same URL apart."""
        return self.path + (f"?{urlencode(self.query)}" if self.query else "")

    @property
    def url(self) -> str:
        return self.origin + self.target


@dataclass
class Response:
    """Status, body bytes, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)
    cut: bool = False  # send only half the body, then close the connection (a dropped connection)


def _shopify_error(status: int, errors: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, _encode({"errors": errors}), JSON_TYPE, headers or [])


def _jsonapi_error(
    status: int,
    code: str,
    title: str,
    detail: str,
    source: Mapping[str, str],
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    error = {
        "id": str(uuid.uuid4()),
        "status": status,
        "code": code,
        "title": title,
        "detail": detail,
        "source": source,
    }
    return Response(status, _encode({"errors": [error]}), JSONAPI_TYPE, headers or [])


def _klaviyo_invalid(error: ParamError) -> Response:
    source = {"header": error.param} if error.header else {"parameter": error.param}
    return _jsonapi_error(400, "invalid", "Invalid input.", f"{error.param}: {error.message}", source)


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


def _secret_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


# =====================================================================================================
# Shopify Admin REST
# =====================================================================================================


@dataclass(frozen=True)
class ShopifyFilters:
    """Compiled Shopify list filters: a lower id bound and a predicate over record indexes."""

    since_id: int | None
    predicate: Predicate | None


def _parse_shopify_ids(text: str) -> frozenset[int]:
    try:
        return frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise ParamError("ids", f"must be a comma-separated list of integer ids (got {text!r})") from error


def _status_predicate(resource: ShopifyResource, table: Table, status: str) -> Predicate | None:
    closed = table.columns.get("closed_at")
    cancelled = table.columns.get("cancelled_at")
    if status == "any":
        return None
    if status == "closed":
        return lambda i: closed[i] == closed[i]
    if status == "cancelled":
        return lambda i: cancelled[i] == cancelled[i]
    if resource.name == "orders":  # open: neither cancelled nor closed
        return lambda i: cancelled[i] != cancelled[i] and closed[i] != closed[i]
    return lambda i: closed[i] != closed[i]


def compile_shopify_filters(
    resource: ShopifyResource, table: Table, filters: Mapping[str, str], shop_tz: tzinfo
) -> ShopifyFilters:
    """Turn the first page's filter parameters into a predicate; ``ParamError`` names a bad one."""
    predicates: list[Predicate] = []
    for param, (column, operator) in SHOPIFY_TIME_FILTERS.items():
        if param in filters:
            try:
                instant = parse_instant(filters[param], shop_tz)
            except ValueError as error:
                raise ParamError(
                    param,
                    f"must be an ISO 8601 timestamp like 2026-01-01T00:00:00+01:00 (got {filters[param]!r})",
                ) from error
            predicates.append(_compare(table.columns[column], operator, instant))
    if "ids" in filters:
        wanted = _parse_shopify_ids(filters["ids"])
        ids = table.ids
        predicates.append(lambda i: ids[i] in wanted)
    since_id = None
    if "since_id" in filters:
        try:
            since_id = int(filters["since_id"])
        except ValueError as error:
            raise ParamError("since_id", f"must be an integer id (got {filters['since_id']!r})") from error
    if resource.statuses:
        status = filters.get("status", resource.statuses[0])
        if status not in resource.statuses:
            raise ParamError("status", f"must be one of {', '.join(resource.statuses)} (got {status!r})")
        status_predicate = _status_predicate(resource, table, status)
        if status_predicate is not None:
            predicates.append(status_predicate)
    return ShopifyFilters(since_id, _and(predicates))


def _project_fields(raw: bytes, fields: Sequence[str]) -> bytes:
    record = json.loads(raw)
    return _encode({name: record[name] for name in fields if name in record})


def _shopify_fault(status: int) -> Response:
    """An injected Shopify error, as the real API sends it."""
    if status == 429:
        return _shopify_error(429, SHOPIFY_THROTTLED, [("Retry-After", SHOPIFY_RETRY_AFTER)])
    return _shopify_error(status, "Internal Server Error" if status == 500 else "Service Unavailable")


class ShopifyApi:
    """Shopify Admin REST over a world: auth, leaky bucket, lists, counts and single records."""

    def __init__(
        self,
        world: Callable[[], World],
        token: Callable[[], str],
        bucket: LeakyBucket,
        faults: FaultInjector | None = None,
    ) -> None:
        self._world = world
        self._token = token
        self._bucket = bucket
        self._faults = faults or FaultInjector(Faults())

    def handle(self, request: Request) -> Response:
        token = request.headers.get("X-Shopify-Access-Token")
        if not _secret_matches(token, self._token()):
            return _shopify_error(401, SHOPIFY_UNAUTHORIZED)
        allowed, used, _ = self._bucket.take(token or "")
        limit_header = (SHOPIFY_CALL_LIMIT_HEADER, f"{used}/{self._bucket.size}")
        if not allowed:
            return _shopify_error(
                429, SHOPIFY_THROTTLED, [limit_header, ("Retry-After", SHOPIFY_RETRY_AFTER)]
            )
        if request.method != "GET":
            response = _shopify_error(405, f"{request.method} is not supported: the sandbox is read-only")
        else:
            response = self._route(request)
        response.headers.append(limit_header)
        return response

    def _route(self, request: Request) -> Response:
        match = SHOPIFY_ROUTE.match(request.path)
        resource = SHOPIFY_RESOURCES.get(match["resource"]) if match else None
        if match is None or resource is None:
            return _shopify_error(404, "Not Found")
        table = self._world().shopify[resource.name]
        if match["member"] is None:
            injected = self._faults.injected_error(request.target)
            if injected is not None:
                return _shopify_fault(injected)
        try:
            if match["member"] == "count":
                return self._count(resource, table, request)
            if match["member"] is not None:
                return self._one(resource, table, int(match["member"]), request)
            response = self._list(resource, table, request, match["version"])
        except ParamError as error:
            response = _shopify_error(400, {error.param: error.message})
        if match["member"] is None:
            self._faults.settle(request.target, response)
        return response

    def _record(self, table: Table, index: int, fields: Sequence[str] | None) -> bytes:
        """One record as served: projected to ``fields``, and with the faults that hit it."""
        raw = table.raw[index]
        record_id = table.ids[index]
        drifted = table.name in SHOPIFY_DRIFT_TABLES and self._faults.drifts(table.name, record_id)
        lacks_id = self._faults.lacks_id(table.name, record_id)
        if not drifted and not lacks_id:
            return raw if fields is None else _project_fields(raw, fields)
        record = json.loads(raw)
        if drifted:
            record[SHOPIFY_DRIFT_FIELD] = self._faults.drift_value(record_id)
        if fields is not None:
            record = {name: record[name] for name in fields if name in record}
        if drifted and SHOPIFY_DRIFT_FIELD in record:
            self._faults.served_drifted(table.name, record_id)
        if lacks_id and record.pop("id", None) is not None:
            self._faults.served_without_id(table.name, record_id)
        return _encode(record)

    def _one(self, resource: ShopifyResource, table: Table, record_id: int, request: Request) -> Response:
        index = table.find(record_id)
        if index is None:
            return _shopify_error(404, "Not Found")
        fields = _split_list(request.params["fields"]) if "fields" in request.params else None
        raw = self._record(table, index, fields)
        return Response(200, b'{"' + resource.singular.encode() + b'":' + raw + b"}")

    def _count(self, resource: ShopifyResource, table: Table, request: Request) -> Response:
        filters = {key: value for key, value in request.params.items() if key in SHOPIFY_FILTER_PARAMS}
        compiled = compile_shopify_filters(resource, table, filters, self._world().shop_timezone)
        lo = bisect_right(table.ids, compiled.since_id) if compiled.since_id is not None else 0
        predicate = compiled.predicate
        count = (
            len(table) - lo if predicate is None else sum(1 for i in range(lo, len(table)) if predicate(i))
        )
        return Response(200, _encode({"count": count}))

    def _list(self, resource: ShopifyResource, table: Table, request: Request, version: str) -> Response:
        params = request.params
        limit = _positive_int(params, "limit", SHOPIFY_DEFAULT_LIMIT, SHOPIFY_MAX_LIMIT)
        cursor: tuple[str, Any] | None = None
        if "page_info" in params:
            extra = sorted(set(params) - SHOPIFY_PAGE_INFO_COMPANIONS)
            if extra:
                raise ParamError(
                    "page_info",
                    f"cannot be combined with {', '.join(extra)}: a request with page_info may only carry "
                    "limit and fields (the first page's filters travel inside the page_info cursor)",
                )
            payload = decode_cursor(params["page_info"], "page_info")
            if payload.get("r") != resource.name or not isinstance(payload.get("k"), int):
                raise ParamError("page_info", f"was not issued for {resource.name}.json")
            filters = {str(key): str(value) for key, value in dict(payload.get("f") or {}).items()}
            cursor = (payload["d"], payload["k"])
        else:
            filters = {key: value for key, value in params.items() if key in SHOPIFY_FILTER_PARAMS}
        compiled = compile_shopify_filters(resource, table, filters, self._world().shop_timezone)
        ids = table.ids
        lo = bisect_right(ids, compiled.since_id) if compiled.since_id is not None else 0
        window = page_window(
            range(len(table)), ids.__getitem__, limit, compiled.predicate, cursor=cursor, lo=lo
        )
        fields = _split_list(params["fields"]) if "fields" in params else None
        raws = [self._record(table, i, fields) for i in window.indexes]
        body = b'{"' + resource.name.encode() + b'":[' + b",".join(raws) + b"]}"
        response = Response(200, body)
        link = self._link_header(request, resource, version, limit, filters, window, ids)
        if link:
            response.headers.append(("Link", link))
        return response

    @staticmethod
    def _link_header(
        request: Request,
        resource: ShopifyResource,
        version: str,
        limit: int,
        filters: Mapping[str, str],
        window: Window,
        ids: Sequence[int],
    ) -> str:
        if not window.indexes:
            return ""
        base = f"{request.origin}/admin/api/{version}/{resource.name}.json"
        links = []
        for direction, rel, wanted, index in (
            ("p", "previous", window.has_prev, window.indexes[0]),
            ("n", "next", window.has_next, window.indexes[-1]),
        ):
            if wanted:
                token = encode_cursor(
                    {"r": resource.name, "d": direction, "k": ids[index], "f": dict(filters)}
                )
                links.append(f'<{base}?limit={limit}&page_info={token}>; rel="{rel}"')
        return ", ".join(links)


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


# =====================================================================================================
# Klaviyo filter expressions
# =====================================================================================================


@dataclass(frozen=True)
class Instant:
    """A datetime literal in a filter, as epoch seconds."""

    epoch: float


@dataclass(frozen=True)
class Bare:
    """An unquoted token in a filter: a field name or a literal."""

    text: str


@dataclass(frozen=True)
class Condition:
    """One ``operator(field,value)`` term of a filter."""

    operator: str
    field: str
    value: Any


class _FilterParser:
    """Recursive-descent parser for Klaviyo's ``filter`` syntax: ``op(field,value)``, ``and(...)``, commas."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> ParamError:
        return ParamError("filter", f"{message} at character {self.pos + 1} of {self.text!r}")

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_spaces()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.fail(f"expected {char!r}")
        self.pos += 1

    def parse(self) -> list[Condition]:
        conditions = self.call()
        while self.peek() == ",":
            self.pos += 1
            conditions += self.call()
        if self.peek():
            raise self.fail("unexpected text")
        return conditions

    def call(self) -> list[Condition]:
        self.skip_spaces()
        match = OPERATOR_NAME.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected an operator such as greater-than(")
        operator = match.group()
        self.pos = match.end()
        self.expect("(")
        if operator == "and":
            conditions = self.call()
            while self.peek() == ",":
                self.pos += 1
                conditions += self.call()
            self.expect(")")
            return conditions
        if operator not in KLAVIYO_COMPARISONS and operator != "any":
            raise self.fail(f"unsupported operator {operator!r}")
        field_token = self.argument()
        if not isinstance(field_token, Bare):
            raise self.fail(f"{operator} needs a field name as its first argument")
        self.expect(",")
        value = self.argument()
        self.expect(")")
        return [Condition(operator, field_token.text, _literal(value, self))]

    def argument(self) -> Any:
        char = self.peek()
        if char in ("'", '"'):
            return self.string(char)
        if char == "[":
            self.pos += 1
            items = []
            while self.peek() != "]":
                items.append(_literal(self.argument(), self))
                if self.peek() == ",":
                    self.pos += 1
                elif self.peek() != "]":
                    raise self.fail("expected ',' or ']' in a list")
            self.pos += 1
            return items
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ",()[]":
            self.pos += 1
        token = self.text[start : self.pos].strip()
        if not token:
            raise self.fail("expected a value")
        return Bare(token)

    def string(self, quote: str) -> str:
        self.pos += 1
        chars = []
        while self.pos < len(self.text) and self.text[self.pos] != quote:
            if self.text[self.pos] == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1
            chars.append(self.text[self.pos])
            self.pos += 1
        if self.pos >= len(self.text):
            raise self.fail("unterminated string")
        self.pos += 1
        return "".join(chars)


def _literal(value: Any, parser: _FilterParser) -> Any:
    if not isinstance(value, Bare):
        return value
    text = value.text
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    try:
        return Instant(parse_instant(text))
    except ValueError:
        raise parser.fail(f"{text!r} is not a datetime, number, boolean or quoted string") from None


def parse_filter(text: str) -> list[Condition]:
    """Conditions (all must hold) of a Klaviyo ``filter`` parameter; ``ParamError`` if malformed."""
    return _FilterParser(text).parse()


def compile_klaviyo_filter(
    resource: KlaviyoResource, table: Table, conditions: Iterable[Condition]
) -> Predicate | None:
    """A predicate over record indexes; ``ParamError`` names an unknown field or a mistyped value."""
    predicates: list[Predicate] = []
    for condition in conditions:
        operators = resource.filter_operators(condition.field)
        if operators is None:
            raise ParamError(
                "filter", f"{condition.field!r} is not a filterable field of {resource.type} resources"
            )
        if condition.operator not in operators:
            raise ParamError(
                "filter",
                f"operator {condition.operator!r} is not allowed on {condition.field!r}; "
                f"use {', '.join(sorted(operators))}",
            )
        values = table.ids if condition.field == "id" else table.columns[condition.field]
        if operators is TIME_OPERATORS:
            value = condition.value
            if not isinstance(value, Instant | float):
                raise ParamError(
                    "filter",
                    f"{condition.field!r} must be compared with a datetime such as 2026-01-01T00:00:00+00:00",
                )
            operand = value.epoch if isinstance(value, Instant) else value
            predicates.append(_compare(values, KLAVIYO_COMPARISONS[condition.operator], operand))
        elif condition.operator == "any":
            if not isinstance(condition.value, list) or not all(isinstance(v, str) for v in condition.value):
                raise ParamError("filter", f"any({condition.field},...) needs a list of quoted strings")
            predicates.append(_compare(values, "in", frozenset(condition.value)))
        else:
            if not isinstance(condition.value, str):
                raise ParamError("filter", f"{condition.field!r} must be compared with a quoted string")
            predicates.append(_compare(values, "==", condition.value))
    return _and(predicates)


# =====================================================================================================
# Klaviyo JSON:API
# =====================================================================================================


def _klaviyo_fault(status: int) -> Response:
    """An injected Klaviyo error, as the real API sends it."""
    if status == 429:
        seconds = KLAVIYO_FAULT_RETRY_AFTER
        return _jsonapi_error(
            429,
            "throttled",
            "Request was throttled.",
            f"Request was throttled. Expected available in {seconds} second{_plural(seconds)}.",
            {"pointer": "/data/"},
            [("Retry-After", str(seconds))],
        )
    if status == 500:
        return _jsonapi_error(
            500, "error", "A server error occurred.", "A server error occurred.", {"pointer": "/data/"}
        )
    return _jsonapi_error(
        503,
        "service_unavailable",
        "Service temporarily unavailable.",
        "The service is temporarily unavailable. Try again later.",
        {"pointer": "/data/"},
    )


class KlaviyoApi:
    """Klaviyo JSON:API over a world: auth, revision header, rate limits, collections and single resources."""

    def __init__(
        self,
        world: Callable[[], World],
        key: Callable[[], str],
        limiter: SlidingWindowLimiter,
        faults: FaultInjector | None = None,
    ) -> None:
        self._world = world
        self._key = key
        self._limiter = limiter
        self._faults = faults or FaultInjector(Faults())

    def handle(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if request.method != "GET":
            return _jsonapi_error(
                405,
                "method_not_allowed",
                "Method not allowed.",
                f"{request.method} is not supported: the sandbox is read-only",
                {},
            )
        members_of = KLAVIYO_LIST_PROFILES_ROUTE.match(request.path)
        match = KLAVIYO_ROUTE.match(request.path)
        resource = KLAVIYO_RESOURCES.get(match["resource"]) if match else None
        if members_of is None and (match is None or resource is None):
            return self._not_found(f"No endpoint at {request.path}.")
        if match is not None and resource is not None and match["member"] is not None:
            try:
                return self._one(resource, match["member"], request)
            except ParamError as error:
                return _klaviyo_invalid(error)
        injected = self._faults.injected_error(request.target)
        if injected is not None:
            return _klaviyo_fault(injected)
        try:
            if members_of is not None:
                response = self._list_members(members_of["list_id"], request)
            else:
                assert resource is not None
                response = self._list(resource, self._world().klaviyo[resource.name], request)
        except ParamError as error:
            response = _klaviyo_invalid(error)
        self._faults.settle(request.target, response)
        return response

    def _refusal(self, request: Request) -> Response | None:
        """401 without the right key, 400 without a revision header, 429 when throttled; else ``None``."""
        authorization = request.headers.get("Authorization") or ""
        key = (
            authorization[len(KLAVIYO_AUTH_SCHEME) :]
            if authorization.startswith(KLAVIYO_AUTH_SCHEME)
            else None
        )
        if key is None or not _secret_matches(key, self._key()):
            error = {"id": str(uuid.uuid4()), **KLAVIYO_UNAUTHENTICATED}
            return Response(401, _encode({"errors": [error]}), JSONAPI_TYPE)
        revision = request.headers.get("revision")
        if not revision or not KLAVIYO_REVISION.match(revision.strip()):
            problem = "is missing" if not revision else f"is not a revision date (got {revision!r})"
            message = (
                f"{problem}: send the header revision: YYYY-MM-DD, e.g. revision: {KLAVIYO_REVISION_EXAMPLE}"
            )
            return _klaviyo_invalid(ParamError("revision", message, header=True))
        wait = self._limiter.take(key)
        if wait is None:
            return None
        seconds = max(1, math.ceil(wait))
        return _jsonapi_error(
            429,
            "throttled",
            "Request was throttled.",
            f"Request was throttled. Expected available in {seconds} second{_plural(seconds)}.",
            {"pointer": "/data/"},
            [("Retry-After", str(seconds))],
        )

    @staticmethod
    def _not_found(detail: str) -> Response:
        return _jsonapi_error(404, "not_found", "Not found.", detail, {"pointer": "/data/"})

    def _one(self, resource: KlaviyoResource, record_id: str, request: Request) -> Response:
        table = self._world().klaviyo[resource.name]
        index = table.find(record_id)
        if index is None:
            return self._not_found(f"A {resource.type} with id {record_id} does not exist.")
        render = self._renderer(resource, table, request.params)
        return self._document(render(index), {"self": request.url}, None)

    def _list_members(self, list_id: str, request: Request) -> Response:
        table = self._world().list_members.get(list_id)
        if table is None:
            return self._not_found(f"A list with id {list_id} does not exist.")
        return self._list(KLAVIYO_LIST_PROFILES, table, request)

    def _list(self, resource: KlaviyoResource, table: Table, request: Request) -> Response:
        """One page of ``table``; without ``sort``, records come in id order."""
        params = request.params
        world = self._world()
        size = _positive_int(params, "page[size]", resource.default_page_size, resource.max_page_size)
        sort = params.get("sort", "id")
        descending = sort.startswith("-")
        sort_field = sort.lstrip("-")
        if "sort" in params and sort_field not in resource.sorts:
            raise ParamError(
                "sort",
                f"must be one of {', '.join(sorted(resource.sorts))} (optionally with '-'), got {sort!r}",
            )
        conditions = parse_filter(params["filter"]) if params.get("filter") else []
        if resource.required_filter and not any(c.field == resource.required_filter for c in conditions):
            raise ParamError(
                "filter",
                f"a {resource.required_filter} filter is required for {resource.name}, "
                f"e.g. filter=equals({resource.required_filter},'email')",
            )
        predicate = compile_klaviyo_filter(resource, table, conditions)
        includes = self._includes(resource, params)
        cursor = None
        if "page[cursor]" in params:
            payload = decode_cursor(params["page[cursor]"], "page[cursor]")
            if payload.get("s") != sort or not isinstance(payload.get("k"), list):
                raise ParamError("page[cursor]", f"was issued for another sort than sort={sort}")
            cursor = (payload["d"], tuple(payload["k"]))
        key = table.sort_key(sort_field)
        order = table.sort_order(sort_field)
        try:
            window = page_window(
                order,
                key,
                size,
                predicate,
                cursor=cursor,
                descending=descending,
                lo=0 if descending else _first_at_or_above(order, key, conditions, sort_field),
            )
        except TypeError as error:  # a forged cursor whose key does not compare with the sort column
            raise ParamError("page[cursor]", FOREIGN_CURSOR) from error
        render = self._renderer(resource, table, params)
        data = [render(index) for index in window.indexes]
        links = {
            "self": request.url,
            "next": self._page_link(request, sort, "n", key(window.indexes[-1])) if window.has_next else None,
            "prev": self._page_link(request, sort, "p", key(window.indexes[0])) if window.has_prev else None,
        }
        included = self._included(world, resource, table, includes, window.indexes, params)
        return self._document(b"[" + b",".join(data) + b"]", links, included if includes else None)

    @staticmethod
    def _page_link(request: Request, sort: str, direction: str, key: tuple[Any, Any]) -> str:
        token = encode_cursor({"d": direction, "s": sort, "k": list(key)})
        query = [(name, value) for name, value in request.query if name != "page[cursor]"]
        return f"{request.origin}{request.path}?{urlencode([*query, ('page[cursor]', token)])}"

    @staticmethod
    def _includes(resource: KlaviyoResource, params: Mapping[str, str]) -> list[str]:
        names = _split_list(params.get("include", ""))
        for name in names:
            if name not in resource.includes:
                allowed = (
                    f"allowed: {', '.join(resource.includes)}" if resource.includes else "none is supported"
                )
                raise ParamError("include", f"{name!r} cannot be included with {resource.name} ({allowed})")
        return names

    def _included(
        self,
        world: World,
        resource: KlaviyoResource,
        table: Table,
        includes: list[str],
        indexes: list[int],
        params: Mapping[str, str],
    ) -> list[bytes]:
        included: list[bytes] = []
        for name in includes:
            column_name, target_name = resource.includes[name]
            column = table.columns[column_name]
            target = world.klaviyo[target_name]
            render = self._renderer(KLAVIYO_RESOURCES[target_name], target, params)
            seen: set[str] = set()
            for index in indexes:
                related_id = column[index]
                if related_id is None or related_id in seen:
                    continue
                seen.add(related_id)
                position = target.find(related_id)
                if position is not None:
                    included.append(render(position))
        return included

    def _renderer(
        self, resource: KlaviyoResource, table: Table, params: Mapping[str, str]
    ) -> Callable[[int], bytes]:
        """How to write one record: raw bytes, unless sparse fields, additional fields or drift change it."""
        sparse = (
            _split_list(params[f"fields[{resource.type}]"]) if f"fields[{resource.type}]" in params else None
        )
        additional = _split_list(params.get(f"additional-fields[{resource.type}]", ""))
        with_side = bool(resource.split_attribute and resource.split_attribute in additional)
        if resource.type == "profile":
            unknown = sorted(set(additional) - {"subscriptions", "predictive_analytics"})
            if unknown:
                raise ParamError(
                    "additional-fields[profile]",
                    f"{', '.join(unknown)} not supported (use subscriptions, predictive_analytics)",
                )
        faults = self._faults
        may_drift = table.name in KLAVIYO_DRIFT_TABLES and faults.faults.drift_rate > 0
        if sparse is None and not with_side and not may_drift:
            return table.raw.__getitem__

        def render(index: int) -> bytes:
            drifted = may_drift and faults.drifts(table.name, table.ids[index])
            if sparse is None and not with_side and not drifted:
                return table.raw[index]
            record = json.loads(table.raw[index])
            attributes = record.get("attributes")
            if not isinstance(attributes, dict):
                return table.raw[index]
            if drifted:
                attributes[KLAVIYO_DRIFT_ATTRIBUTE] = True
            if sparse is not None:
                record["attributes"] = attributes = {
                    name: attributes[name] for name in sparse if name in attributes
                }
            side = table.side[index] if with_side and table.side else None
            if side is not None:
                attributes[resource.split_attribute] = json.loads(side)
            if drifted and KLAVIYO_DRIFT_ATTRIBUTE in attributes:
                faults.served_drifted(table.name, table.ids[index])
            return _encode(record)

        return render

    @staticmethod
    def _document(data: bytes, links: Mapping[str, Any], included: list[bytes] | None) -> Response:
        body = b'{"data":' + data + b',"links":' + _encode(links)
        if included is not None:
            body += b',"included":[' + b",".join(included) + b"]"
        return Response(200, body + b"}", JSONAPI_TYPE)


# =====================================================================================================
# HTTP plumbing
# =====================================================================================================


class _HttpServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its API and can close open keep-alive connections on stop."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: _App) -> None:
        self.app = app
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            for connection in list(self.connections):
                with contextlib.suppress(OSError):  # already closed by the client
                    connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the app; logs nothing (request headers carry secrets)."""

    protocol_version = "HTTP/1.1"
    server_version = "shop360-sandbox"
    sys_version = ""
    timeout = HANDLER_IDLE_TIMEOUT_SECONDS
    server: _HttpServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK stall each response ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self.close_connection = True  # the body is not read: do not reuse the connection
        self._serve()

    def do_PUT(self) -> None:
        self.do_POST()

    def do_PATCH(self) -> None:
        self.do_POST()

    def do_DELETE(self) -> None:
        self.do_POST()

    def _serve(self) -> None:
        split = urlsplit(self.path)
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        request = Request(
            method=self.command,
            path=split.path,
            query=parse_qsl(split.query, keep_blank_values=True),
            headers=self.headers,
            origin=f"http://{host}",
        )
        try:
            response = self.server.app.handle(request)
        except Exception:
            LOG.exception("sandbox API failed on %s %s", self.command, split.path)
            response = _shopify_error(500, "Internal Server Error")
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if response.cut:  # a connection dropped mid-page: half the promised body, then the socket closes
            self.wfile.write(response.body[: len(response.body) // 2])
            self.close_connection = True
            return
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the default access log is noise, and header values must never reach a log."""


class _App:
    """Dispatches a request to the Shopify or the Klaviyo fake by path; holds back slow responses."""

    def __init__(self, shopify: ShopifyApi, klaviyo: KlaviyoApi, faults: FaultInjector) -> None:
        self.shopify = shopify
        self.klaviyo = klaviyo
        self.faults = faults

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/admin/"):
            response = self.shopify.handle(request)
        elif request.path == "/api" or request.path.startswith("/api/"):
            response = self.klaviyo.handle(request)
        else:
            response = _shopify_error(404, "Not Found")
        delay = self.faults.delay()
        if delay > 0:
            time.sleep(delay)
        return response


# =====================================================================================================
# Public API
# =====================================================================================================


class SandboxServer:
    """The sandbox's fake Shopify and Klaviyo APIs on one loopback HTTP server.

    >>> with SandboxServer() as server:  # doctest: +SKIP
    ...     requests.get(f"{server.shopify_base_url}/orders.json", params={"status": "any"}, headers=...)

    ``faults`` puts it under faults (see the module docstring); when it is not given they come from
    the environment variable ``SHOP360_SANDBOX_FAULTS`` (none when unset), so a pipeline that starts
    the sandbox itself can be put under faults from outside. The rate limits default to the real
    ones' (Shopify's standard plan); benchmarks may raise them.
    """

    def __init__(
        self,
        root: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        shopify_token: str | None = None,
        klaviyo_key: str | None = None,
        shopify_bucket_size: int = SHOPIFY_DEFAULT_BUCKET_SIZE,
        shopify_leak_per_second: float = SHOPIFY_DEFAULT_LEAK_PER_SECOND,
        klaviyo_burst_per_second: int = KLAVIYO_DEFAULT_BURST_PER_SECOND,
        klaviyo_steady_per_minute: int = KLAVIYO_DEFAULT_STEADY_PER_MINUTE,
        faults: Faults | None = None,
    ) -> None:
        for name, value in (
            ("shopify_bucket_size", shopify_bucket_size),
            ("shopify_leak_per_second", shopify_leak_per_second),
            ("klaviyo_burst_per_second", klaviyo_burst_per_second),
            ("klaviyo_steady_per_minute", klaviyo_steady_per_minute),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self.root = Path(root) if root is not None else paths.sandbox_dir()
        self.host = host
        self.port = port
        self._shopify_token = shopify_token
        self._klaviyo_key = klaviyo_key
        self.faults = faults if faults is not None else Faults.from_env()
        self._world: World | None = None
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._faults = FaultInjector(self.faults)
        self._app = _App(
            ShopifyApi(
                self._current_world,
                self._current_shopify_token,
                LeakyBucket(shopify_bucket_size, shopify_leak_per_second),
                self._faults,
            ),
            KlaviyoApi(
                self._current_world,
                self._current_klaviyo_key,
                SlidingWindowLimiter([(klaviyo_burst_per_second, 1.0), (klaviyo_steady_per_minute, 60.0)]),
                self._faults,
            ),
            self._faults,
        )

    # -- addresses ------------------------------------------------------------------------------------
    @property
    def world_dir(self) -> Path:
        return self.root / "world"

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(
                "the sandbox server is not started: call start() (or use it as a context manager)"
            )
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def shopify_base_url(self) -> str:
        return f"{self.base_url}/admin/api/{SHOPIFY_API_VERSION}"

    @property
    def klaviyo_base_url(self) -> str:
        return f"{self.base_url}/api"

    # -- faults ---------------------------------------------------------------------------------------
    @property
    def fault_counts(self) -> dict[str, Any]:
        """What was injected so far (a snapshot): ``errors_429``, ``errors_5xx``, ``slowed``, ``dropped``,
        ``drifted_records`` (distinct records served with the unknown field) and ``missing_id_records``
        (distinct records served without id, per table: ``{"customers": n, "orders": n}``)."""
        return self._faults.counts()

    def missing_id_ids(self, table: str) -> set[int]:
        """The true ids of the ``table`` records (``orders`` or ``customers``) served without ``id``."""
        return self._faults.missing_ids(table)

    # -- lifecycle ------------------------------------------------------------------------------------
    def reload(self) -> None:
        """(Re)load the world from disk, e.g. after it was advanced; in-flight requests see old or new."""
        world = load_world(self.world_dir)
        tokens = world.meta.get("api_tokens") or {}
        for name, given, key in (
            ("shopify_token", self._shopify_token, "shopify"),
            ("klaviyo_key", self._klaviyo_key, "klaviyo"),
        ):
            if given is None and not tokens.get(key):
                raise RuntimeError(
                    f"no {key} credential: {self.world_dir / 'meta.json'} has no api_tokens.{key}; "
                    f"pass {name}= or generate the world first"
                )
        self._world = world

    def start(self) -> SandboxServer:
        """Load the world, bind the port and serve in a daemon thread."""
        self._bind()
        assert self._httpd is not None
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="shop360-sandbox-api",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Load the world, bind the port and serve in the foreground until interrupted (for the CLI)."""
        self._bind()
        assert self._httpd is not None
        LOG.info("sandbox APIs: Shopify %s, Klaviyo %s", self.shopify_base_url, self.klaviyo_base_url)
        try:
            self._httpd.serve_forever(poll_interval=SHUTDOWN_POLL_SECONDS)
        except KeyboardInterrupt:
            LOG.info("sandbox APIs interrupted")
        finally:
            self._close()

    def stop(self) -> None:
        """Stop serving, close open connections and free the port. Safe to call twice."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------------------------
    def _bind(self) -> None:
        if self._httpd is not None:
            raise RuntimeError(f"the sandbox server is already serving at {self.base_url}")
        self.reload()
        self._httpd = _HttpServer((self.host, self.port), self._app)
        if self.faults.active:
            LOG.warning("sandbox APIs serve with faults: %s", self.faults.spec())

    def _close(self) -> None:
        if self._httpd is not None:
            self._httpd.close_connections()
            self._httpd.server_close()
            self._httpd = None

    def _current_world(self) -> World:
        if self._world is None:
            raise RuntimeError("the sandbox world is not loaded")
        return self._world

    def _current_shopify_token(self) -> str:
        return self._shopify_token or str(self._current_world().meta["api_tokens"]["shopify"])

    def _current_klaviyo_key(self) -> str:
        return self._klaviyo_key or str(self._current_world().meta["api_tokens"]["klaviyo"])


def _faults_argument(text: str) -> Faults:
    try:
        return Faults.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ingestion.sandbox.server``: serve the sandbox world in the foreground."""
    parser = argparse.ArgumentParser(
        description="Serve the sandbox world with fake Shopify and Klaviyo APIs."
    )
    parser.add_argument(
        "--root", type=Path, default=None, help="sandbox root holding world/ (default: data/sandbox)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_CLI_PORT, help=f"port (default: {DEFAULT_CLI_PORT})"
    )
    parser.add_argument(
        "--shopify-bucket-size",
        type=int,
        default=SHOPIFY_DEFAULT_BUCKET_SIZE,
        help=f"leaky bucket size (default: {SHOPIFY_DEFAULT_BUCKET_SIZE}, Shopify's standard plan)",
    )
    parser.add_argument(
        "--shopify-leak-per-second",
        type=float,
        default=SHOPIFY_DEFAULT_LEAK_PER_SECOND,
        help=f"leaky bucket drain rate in calls per second (default: {SHOPIFY_DEFAULT_LEAK_PER_SECOND:g})",
    )
    parser.add_argument(
        "--klaviyo-burst-per-second",
        type=int,
        default=KLAVIYO_DEFAULT_BURST_PER_SECOND,
        help=f"Klaviyo requests allowed per second (default: {KLAVIYO_DEFAULT_BURST_PER_SECOND})",
    )
    parser.add_argument(
        "--klaviyo-steady-per-minute",
        type=int,
        default=KLAVIYO_DEFAULT_STEADY_PER_MINUTE,
        help=f"Klaviyo requests allowed per minute (default: {KLAVIYO_DEFAULT_STEADY_PER_MINUTE})",
    )
    parser.add_argument(
        "--faults",
        type=_faults_argument,
        default=None,
        metavar="SPEC",
        help=(
            "faults to inject, e.g. 'error_rate=0.1,slow_rate=0.05,slow_seconds=0.5,drop_connections=1,"
            f"drift_rate=0.05,missing_id_rate=0.01,seed=7' (default: ${FAULTS_ENV_VAR}, else none)"
        ),
    )
    args = parser.parse_args(argv)
    if args.faults is None:
        try:
            args.faults = Faults.from_env()
        except ValueError as error:
            parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = SandboxServer(
        args.root,
        args.host,
        args.port,
        shopify_bucket_size=args.shopify_bucket_size,
        shopify_leak_per_second=args.shopify_leak_per_second,
        klaviyo_burst_per_second=args.klaviyo_burst_per_second,
        klaviyo_steady_per_minute=args.klaviyo_steady_per_minute,
        faults=args.faults,
    )
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
