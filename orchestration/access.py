"""Right of access: ``shop360 export-person`` writes everything held about one person as one JSON file.

GDPR art. 15, and Shopify's ``customers/data_request`` webhook. The person and their rows are found
by the same code as ``shop360 forget`` (``orchestration.person``): every table and view of the
warehouse (raw tables with their nested rows, dlt's staging datasets, staging, intermediate, marts,
audit) and of the BI snapshot. The document also says whether any of their identifiers is on the
suppression list and which erasure requests named them (by keyed hash).

The file holds the person's own data, so it is written to a file (default
``data/exports/<request id>.json``), never printed; the terminal shows row counts only.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from ingestion import paths
from ingestion.pipelines import hash_key
from ingestion.suppression import QUALIFIED_TABLE as SUPPRESSIONS
from orchestration.erasure import ERASURE_LOG, Request, not_found, open_warehouse
from orchestration.person import (
    Person,
    RowCount,
    TableMatch,
    attach_bi_snapshot,
    owned_rows,
    resolve_person,
)

NESTED_KEY = "_nested"


@dataclass
class ExportReport:
    """Where the document went and how many rows it holds per table (no values)."""

    request: Request
    output: Path
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def render(self) -> str:
        lines = [
            f"export-person: request {self.request.request_id}: {sum(self.rows.values()):,} rows from "
            f"{len(self.rows)} tables written to {self.output}"
        ]
        lines += [f"    {table:<58} {rows:>8,}" for table, rows in sorted(self.rows.items())]
        return "\n".join(lines)


def _value(value: Any, data_type: str) -> Any:
    """A warehouse value as JSON: JSON columns parsed, decimals and times as text."""
    if value is None:
        return None
    if data_type == "JSON" and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _value(item, "") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_value(item, "") for item in value]
    if isinstance(value, bytes):
        return value.hex()
    return value if isinstance(value, str | int | float | bool) else str(value)


def fetch_rows(connection: duckdb.DuckDBPyConnection, match: TableMatch) -> list[dict[str, Any]]:
    """The person's rows of one relation, as JSON-ready dicts."""
    types = match.relation.column_types
    cursor = connection.execute(f"select * from {match.relation.sql} where {match.owned}")
    columns = [column[0] for column in cursor.description]
    return [
        {column: _value(value, types.get(column, "")) for column, value in zip(columns, row, strict=True)}
        for row in cursor.fetchall()
    ]


def _nest(tables: dict[str, list[dict]], counts: list[RowCount]) -> None:
    """Move each nested dlt table's rows under their root row (``_nested``: table -> rows)."""
    for count in counts:
        match = count.match
        label = match.relation.label
        if match.root is None or label not in tables:
            continue
        root_label = label.rsplit(".", 1)[0] + "." + match.root
        roots = {row.get("_dlt_id"): row for row in tables.get(root_label, [])}
        orphans = []
        for row in tables.pop(label):
            root = roots.get(row.get("_dlt_root_id"))
            if root is None:
                orphans.append(row)
            else:
                root.setdefault(NESTED_KEY, defaultdict(list))[match.relation.name].append(row)
        if orphans:
            tables[label] = orphans


def _dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The rows of an executed query as JSON-ready dicts."""
    columns = [column[0] for column in cursor.description]
    return [
        {column: _value(value, "") for column, value in zip(columns, row, strict=True)}
        for row in cursor.fetchall()
    ]


def _records(connection: duckdb.DuckDBPyConnection, request: Request, person: Person, key: str) -> dict:
    """The suppression entries and erasure requests that name the person (keyed hashes)."""
    hashes = [item.hashed(key).split(":", 1)[1] for item in person.all_identifiers()]
    subjects = [item.hashed(key) for item in person.all_identifiers()]
    found: dict[str, Any] = {"suppression_entries": [], "erasure_requests": []}
    existing = {
        name
        for (name,) in connection.execute(
            "select table_name from duckdb_tables() where schema_name = 'audit' "
            "and database_name = current_database()"
        ).fetchall()
    }
    if SUPPRESSIONS.split(".")[1] in existing:
        cursor = connection.execute(
            f"select identifier_type, identifier_hash, request_id, suppressed_at from {SUPPRESSIONS} "
            "where list_contains(?, identifier_hash)",
            [hashes],
        )
        found["suppression_entries"] = _dicts(cursor)
    if ERASURE_LOG.split(".")[1] in existing:
        cursor = connection.execute(
            f"select request_id, requested_at, request_type, dry_run, status from {ERASURE_LOG} "
            "where list_has_any(subject_hashes, ?)",
            [subjects],
        )
        found["erasure_requests"] = _dicts(cursor)
    return found


def person_document(
    connection: duckdb.DuckDBPyConnection, request: Request, key: str, bi_catalog: str | None
) -> tuple[dict[str, Any], dict[str, int]]:
    """The access document for the person ``request`` names, and their rows per table."""
    person, matches = resolve_person(connection, request.identifiers, key, bi_catalog)
    counts = [count for count in owned_rows(connection, matches) if count.owned]
    if not counts:
        raise not_found(connection, request, key)
    tables = {count.match.relation.label: fetch_rows(connection, count.match) for count in counts}
    _nest(tables, counts)
    document = {
        "generated_at": datetime.now(UTC).isoformat(),
        "request": {"request_id": request.request_id, "request_type": request.request_type},
        "identifiers": {kind: sorted(values) for kind, values in sorted(person.identifiers.items())},
        "customer_keys": sorted(person.customer_keys),
        "row_counts": {count.match.relation.label: count.owned for count in counts},
        "layers": {count.match.relation.label: count.match.layer for count in counts},
        "tables": tables,
        **_records(connection, request, person, key),
    }
    return document, document["row_counts"]


def export_person(request: Request, output: Path | None = None, wait_seconds: float = 0) -> ExportReport:
    """Write the access document of the person ``request`` names to ``output``."""
    started = time.perf_counter()
    key = hash_key()
    output = output or paths.data_dir() / "exports" / f"{request.request_id}.json"
    with (
        open_warehouse(read_only=True, wait_seconds=wait_seconds) as connection,
        contextlib.ExitStack() as stack,
    ):
        bi_catalog = stack.enter_context(attach_bi_snapshot(connection))
        document, rows = person_document(connection, request, key, bi_catalog)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=1, ensure_ascii=False, default=str))
    return ExportReport(request, output, rows, time.perf_counter() - started)
