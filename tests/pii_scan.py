"""A scan of tables for the direct identifiers of a sandbox world (the BI snapshot's PII tests).

The planted values come from what the source systems hold (the world's files, as the APIs serve
them, with every variant an email was typed in) and from the ground truth. Every column of every
table is scanned: integer and numeric columns for an identifier equal to a value, every other column
(as text, lower-cased) for an identifier contained in it. Findings name the table, the column and the
kind of identifier with a count, never the value, so a failing test prints no personal data.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingestion.pii import normalise_email
from tests.conftest import read_jsonl

NUMERIC_TYPES = re.compile(r"(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|DECIMAL\(.*\)|DOUBLE|FLOAT|REAL)")
# Kinds of the truth's identities (truth/identities.csv.gz id_type → kind)
TRUTH_KINDS = {
    "email": "email",
    "phone": "phone",
    "customer_id": "shopify_customer_id",
    "order_id": "shopify_order_id",
    "checkout_id": "shopify_checkout_id",
    "profile_id": "klaviyo_profile_id",
    "user_pseudo_id": "ga4_user_pseudo_id",
    "user_id": "ga4_user_id",
}


@dataclass(frozen=True, order=True)
class Finding:
    """Distinct values of ``table.column`` holding an identifier of ``kind``."""

    table: str
    column: str
    kind: str
    values: int


def _add(planted: dict[str, set[str]], kind: str, value: object) -> None:
    if value is None or value == "":
        return
    text = str(value)
    if kind == "email":
        planted[kind].add(text)  # as typed
        if normalised := normalise_email(text):
            planted[kind].add(normalised)
    elif kind == "phone":
        planted[kind].add(text.strip())
        digits = re.sub(r"\D", "", text)
        if len(digits) >= 7:
            planted[kind].add(digits)
    else:
        planted[kind].add(text)


def _shopify_identifiers(world: Path, planted: dict[str, set[str]]) -> None:
    def person(record: dict) -> None:
        _add(planted, "email", record.get("email"))
        _add(planted, "phone", record.get("phone"))
        if record.get("first_name") and record.get("last_name"):
            _add(planted, "person_name", f"{record['first_name']} {record['last_name']}")
        for address in [record.get("default_address") or {}, *(record.get("addresses") or [])]:
            _add(planted, "street_address", address.get("address1"))
            _add(planted, "phone", address.get("phone"))

    for customer in read_jsonl(world / "shopify" / "customers.jsonl"):
        _add(planted, "shopify_customer_id", customer.get("id"))
        person(customer)
    for order in read_jsonl(world / "shopify" / "orders.jsonl"):
        _add(planted, "shopify_order_id", order.get("id"))
        _add(planted, "shopify_order_token", order.get("token"))
        _add(planted, "ip_address", order.get("browser_ip"))
        person(order)
        if order.get("customer"):
            _add(planted, "shopify_customer_id", order["customer"].get("id"))
            person(order["customer"])
    for checkout in read_jsonl(world / "shopify" / "checkouts.jsonl"):
        _add(planted, "shopify_checkout_id", checkout.get("id"))
        _add(planted, "shopify_checkout_token", checkout.get("token"))
        _add(planted, "shopify_checkout_token", checkout.get("cart_token"))
        person(checkout)
        if checkout.get("customer"):
            _add(planted, "shopify_customer_id", checkout["customer"].get("id"))


def _klaviyo_identifiers(world: Path, planted: dict[str, set[str]]) -> None:
    for profile in read_jsonl(world / "klaviyo" / "profiles.jsonl"):
        attributes = profile["attributes"]
        _add(planted, "klaviyo_profile_id", profile["id"])
        _add(planted, "email", attributes.get("email"))
        _add(planted, "phone", attributes.get("phone_number"))
        _add(planted, "klaviyo_external_id", attributes.get("external_id"))
        if attributes.get("first_name") and attributes.get("last_name"):
            _add(planted, "person_name", f"{attributes['first_name']} {attributes['last_name']}")
        location = attributes.get("location") or {}
        _add(planted, "street_address", location.get("address1"))
        _add(planted, "ip_address", location.get("ip"))
    for event in read_jsonl(world / "klaviyo" / "events.jsonl"):
        _add(planted, "klaviyo_profile_id", event["relationships"]["profile"]["data"]["id"])


def _ga4_identifiers(sandbox: Path, planted: dict[str, set[str]]) -> None:
    for path in sorted((sandbox / "ga4").glob("events_*.json.gz")):
        with gzip.open(path, "rt") as handle:
            for line in handle:
                event = json.loads(line)
                _add(planted, "ga4_user_pseudo_id", event.get("user_pseudo_id"))
                _add(planted, "ga4_user_id", event.get("user_id"))


def planted_identifiers(sandbox: Path) -> dict[str, set[str]]:
    """Every direct identifier of the world: kind → values (emails as typed and normalised)."""
    planted: dict[str, set[str]] = defaultdict(set)
    _shopify_identifiers(sandbox / "world", planted)
    _klaviyo_identifiers(sandbox / "world", planted)
    _ga4_identifiers(sandbox, planted)
    with gzip.open(sandbox / "truth" / "identities.csv.gz", "rt") as handle:
        for row in csv.DictReader(handle):
            _add(planted, TRUTH_KINDS.get(row["id_type"], row["id_type"]), row["identifier"])
    return dict(planted)


def _load_needles(connection: duckdb.DuckDBPyConnection, planted: dict[str, set[str]]) -> None:
    rows = [(kind, value.lower()) for kind, values in planted.items() for value in values if value.strip()]
    connection.execute("create or replace temp table text_needles (kind varchar, needle varchar)")
    connection.executemany("insert into text_needles values (?, ?)", rows)
    connection.execute(
        """
        create or replace temp table number_needles as
        select distinct kind, cast(needle as hugeint) as value
        from text_needles
        where regexp_full_match(needle, '[0-9]{6,38}')
        """
    )


def _scan_column(
    connection: duckdb.DuckDBPyConnection, table: str, relation: str, column: str, data_type: str
) -> list[Finding]:
    quoted = '"' + column.replace('"', '""') + '"'
    if NUMERIC_TYPES.fullmatch(data_type):
        values = f"select distinct try_cast({quoted} as hugeint) as value from {relation}"
        match = "values.value = needles.value"
        needles = "number_needles"
    else:
        values = (
            f"select distinct lower(cast({quoted} as varchar)) as value from {relation} "
            f"where {quoted} is not null"
        )
        match = "contains(values.value, needles.needle)"
        needles = "text_needles"
    rows = connection.execute(
        f"""
        select needles.kind, count(distinct values.value)
        from ({values}) as values
        inner join {needles} as needles on {match}
        group by needles.kind
        """
    ).fetchall()
    return [Finding(table, column, kind, count) for kind, count in rows]


def scan(
    connection: duckdb.DuckDBPyConnection, relations: dict[str, str], planted: dict[str, set[str]]
) -> list[Finding]:
    """Every column of every relation (name → SQL relation) scanned for the planted identifiers."""
    _load_needles(connection, planted)
    findings = []
    for table, relation in relations.items():
        for column, data_type, *_ in connection.execute(f"describe select * from {relation}").fetchall():
            findings += _scan_column(connection, table, relation, column, data_type)
    return sorted(findings)


def snapshot_relations(connection: duckdb.DuckDBPyConnection, alias: str) -> dict[str, str]:
    """``schema.table`` → relation of every table of the DuckDB file attached as ``alias``."""
    return {
        f"{schema}.{table}": f'{alias}."{schema}"."{table}"'
        for schema, table in connection.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = ? order by all",
            [alias],
        ).fetchall()
    }


def parquet_relations(folder: Path) -> dict[str, str]:
    """``<file name>`` → relation of every Parquet file of ``folder``."""
    return {path.name: f"read_parquet('{path}')" for path in sorted(folder.glob("*.parquet"))}
