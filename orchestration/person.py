"""Who a person is in the warehouse, and which rows of every table are theirs.

The one answer shared by ``shop360 forget``, its ``--dry-run`` and ``shop360 export-person``:

1. **Resolve the person** (``resolve_person``). The identifiers given (an email, a Shopify customer
   id, a ``customers/redact`` payload's customer, email, phone and orders), normalised as identity
   resolution normalises them, name one or more ``customer_key``s in
   ``intermediate.int_identity__person_identifiers``; the person is every identifier of those keys
   plus the identifiers given. Then the raw tables add the records those identifiers own that
   identity resolution leaves out (test orders, records loaded since the last build): the ids of
   the Shopify customers, orders and checkouts and Klaviyo profiles whose id, customer or email is
   the person's, and the GA4 cookies that are theirs or log in or buy as them, until nothing new
   turns up.
2. **Match rows** (``person_tables``, ``owned_rows``). Every table and view of the warehouse (and
   of the BI snapshot, when attached) is matched by its column names: a row is the person's when
   a column holding an identifier (``email``, ``customer_id``/``customer__id``/``user_id``,
   ``order_id``, ``profile_id``, ``user_pseudo_id``, ``customer_key``, identity's node keys and
   their md5s, ``email_hash``, …) holds one of theirs; a raw table's ``id`` by the table
   (customers, orders, checkouts, profiles); dlt's nested tables follow their root row
   (``_dlt_root_id``). A phone column only *mentions* a person: the row stays someone else's.

The person's identifiers sit in a temporary table (``erasure_person``) of the connection, so the
same SQL counts, deletes and exports, and no identifier ever enters the SQL text.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb

from ingestion import paths, settings
from ingestion.pii import keyed_hash, normalise_phone
from ingestion.suppression import (
    EMAIL,
    GA4_COOKIE,
    IDENTIFIER_TYPES,
    KLAVIYO_PROFILE,
    PHONE,
    SHOPIFY_CHECKOUT,
    SHOPIFY_CUSTOMER,
    SHOPIFY_ORDER,
    default_calling_code,
    normalise,
)
from ingestion.suppression import TABLE as SUPPRESSIONS_TABLE
from orchestration.dbt_manifest import MANIFEST_FILE, TARGET_DIR
from orchestration.publish import SNAPSHOT_FILE

PERSON_TABLE = "erasure_person"
# staging's is_valid_email rule (transform/macros/casts.sql)
VALID_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
BI_CATALOG = "bi_snapshot"
PHONE_FUNCTION = "shop360_normalised_phone"

# Kinds of value the matcher knows besides identity resolution's identifier types
CUSTOMER_KEY = "customer_key"
NODE_KEY = "node_key"  # identity's 'type:value'
NODE_KEY_HASH = "node_key_hash"  # md5 of a node key (person keys, components, cut identifiers)
EMAIL_HASH = "email_hash"  # keyed hash of a normalised email (the BI snapshot)

# A column of this name holds an identifier of the row's owner (any table, any layer).
OWNER_COLUMNS = {
    "email": EMAIL,
    "customer_id": SHOPIFY_CUSTOMER,
    "customer__id": SHOPIFY_CUSTOMER,
    "default_address__customer_id": SHOPIFY_CUSTOMER,
    "user_id": SHOPIFY_CUSTOMER,  # GA4's login id is the Shopify customer id
    "order_id": SHOPIFY_ORDER,
    "last_order_id": SHOPIFY_ORDER,
    "transaction_id": SHOPIFY_ORDER,  # GA4's purchase id is the Shopify order id
    "ecommerce__transaction_id": SHOPIFY_ORDER,  # the same, as raw GA4 holds it
    "converted_order_id": SHOPIFY_ORDER,
    "event_properties___event_id": SHOPIFY_ORDER,  # Klaviyo's Placed Order names the Shopify order
    "checkout_id": SHOPIFY_CHECKOUT,
    "profile_id": KLAVIYO_PROFILE,
    "user_pseudo_id": GA4_COOKIE,
    "customer_key": CUSTOMER_KEY,
    "old_customer_key": CUSTOMER_KEY,
    "new_customer_key": CUSTOMER_KEY,
    "node_key": NODE_KEY,
    "node_key_a": NODE_KEY,
    "node_key_b": NODE_KEY,
    "node_key_hash": NODE_KEY_HASH,
    "component_id": NODE_KEY_HASH,
    "person_component_id": NODE_KEY_HASH,
    "email_hash": EMAIL_HASH,
}
# Column pairs naming a typed identifier: (type column, value column)
TYPED_COLUMNS = (
    ("identifier_type", "identifier_value"),
    ("node_type", "node_value"),
    ("linked_type", "linked_value"),
    ("record_type", "record_id"),
)
# Raw tables whose ``id`` is an identifier; quarantine rows name them by (source_table, record_id)
RECORD_ID_TYPES = {
    "customers": SHOPIFY_CUSTOMER,
    "orders": SHOPIFY_ORDER,
    "checkouts": SHOPIFY_CHECKOUT,
    "profiles": KLAVIYO_PROFILE,
}
# JSON columns with an identifier inside: column -> field -> type (raw GA4's ecommerce, in rows
# loaded before raw GA4 was flat)
JSON_FIELDS = {"ecommerce": {"transaction_id": SHOPIFY_ORDER}}
# Columns that mention a phone: the row is not the person's for it, but the phone is
PHONE_COLUMNS = ("phone", "phone_number")
# Plain tables owned by Python code, not dbt: the erasure's own records are never matched
PYTHON_OWNED = {("audit", "erasure_log"), ("audit", SUPPRESSIONS_TABLE)}

# What happens to a layer's rows when a person is forgotten
DELETED_LAYERS = ("raw", "dlt_staging", "dbt_incremental", "other")
REBUILT_LAYERS = ("dbt", "view")


class PersonNotFound(LookupError):
    """No row of the warehouse names any of the identifiers given."""


@dataclass(frozen=True, order=True)
class Identifier:
    """One identifier, normalised as identity resolution normalises it."""

    type: str
    value: str

    @property
    def node_key(self) -> str:
        return f"{self.type}:{self.value}"

    def hashed(self, key: str) -> str:
        """``type:keyed hash`` (what logs and the suppression list hold instead of the value)."""
        return f"{self.type}:{keyed_hash(self.value, key)}"


def identifier(identifier_type: str, value: Any) -> Identifier:
    """``value`` normalised as an identifier of ``identifier_type``; a ValueError when it is none."""
    if identifier_type not in IDENTIFIER_TYPES:
        raise ValueError(f"unknown identifier type {identifier_type!r}")
    normalised = normalise(identifier_type, value)
    if identifier_type == EMAIL and normalised and not VALID_EMAIL.fullmatch(normalised):
        normalised = None
    if normalised is None:
        raise ValueError(f"{identifier_type}: the value given is not a valid {identifier_type}")
    return Identifier(identifier_type, normalised)


@dataclass
class Person:
    """Everything that identifies one person: typed identifiers and customer keys."""

    requested: list[Identifier]
    identifiers: dict[str, set[str]] = field(default_factory=dict)
    customer_keys: set[str] = field(default_factory=set)

    def add(self, identifier_type: str, values: set[str]) -> int:
        """Add ``values`` of ``identifier_type``; how many were new."""
        known = self.identifiers.setdefault(identifier_type, set())
        new = values - known
        known |= new
        return len(new)

    def all_identifiers(self) -> list[Identifier]:
        return sorted(
            Identifier(identifier_type, value)
            for identifier_type, values in self.identifiers.items()
            for value in values
        )

    @property
    def size(self) -> dict[str, int]:
        """Identifiers per type (counts only, for reports)."""
        return {identifier_type: len(values) for identifier_type, values in sorted(self.identifiers.items())}

    def rows(self, hash_key: str) -> list[tuple[str, str]]:
        """The (kind, value) rows of the ``erasure_person`` table: identifiers, keys, node keys, hashes."""
        rows = [(item.type, item.value) for item in self.all_identifiers()]
        rows += [(CUSTOMER_KEY, key) for key in sorted(self.customer_keys)]
        for item in self.all_identifiers():
            rows.append((NODE_KEY, item.node_key))
            rows.append((NODE_KEY_HASH, hashlib.md5(item.node_key.encode()).hexdigest()))
        rows += [
            (EMAIL_HASH, keyed_hash(email, hash_key)) for email in sorted(self.identifiers.get(EMAIL, ()))
        ]
        # the BI snapshot publishes source ids as their keyed hash (orchestration/publish.py)
        rows += [(keyed(item.type), keyed_hash(item.value, hash_key)) for item in self.all_identifiers()]
        return rows


@dataclass(frozen=True)
class Relation:
    """A table or view of the warehouse, or of the BI snapshot attached to the same connection."""

    catalog: str  # the database's name in the connection
    schema: str
    name: str
    columns: tuple[tuple[str, str], ...]  # (column, type)
    is_view: bool
    in_bi_snapshot: bool = False

    @property
    def sql(self) -> str:
        return f'"{self.catalog}"."{self.schema}"."{self.name}"'

    @property
    def label(self) -> str:
        """``schema.table``, or ``bi:schema.table`` in the BI snapshot."""
        return f"{'bi:' if self.in_bi_snapshot else ''}{self.schema}.{self.name}"

    @cached_property
    def column_types(self) -> dict[str, str]:
        return dict(self.columns)


@dataclass(frozen=True)
class TableMatch:
    """How to find one person's rows in one relation, and what forgetting does to them."""

    relation: Relation
    layer: str  # raw, dlt_staging, dbt_incremental, dbt, view, bi, other
    owned: str  # SQL condition: the row is the person's
    phones: tuple[str, ...] = ()  # phone columns (mentions)
    root: str | None = None  # a nested dlt table: its root table

    @property
    def action(self) -> str:
        if self.layer in DELETED_LAYERS and not self.relation.is_view:
            return "delete"
        if self.layer == "bi":
            return "republish"
        return "rebuild"

    def phone_named(self, column: str) -> str:
        """SQL condition: phone ``column`` holds one of the person's phones."""
        return _in(f"{PHONE_FUNCTION}({_quote(column)})", PHONE)

    @property
    def mentions(self) -> str | None:
        """SQL condition: the row is not the person's but names their phone."""
        if not self.phones:
            return None
        named = " or ".join(self.phone_named(column) for column in self.phones)
        return f"not ({self.owned}) and ({named})"


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _in(expression: str, kind: str) -> str:
    """SQL: ``expression`` is one of the person's values of ``kind``."""
    return f"{expression} in (select identifier_value from {PERSON_TABLE} where identifier_type = '{kind}')"


def _email_sql(column: str) -> str:
    """An email column normalised like the dbt macro identity_email (without its validity test)."""
    return rf"lower(regexp_replace({_quote(column)}, '^[\s\x{{00A0}}]+|[\s\x{{00A0}}]+$', '', 'g'))"


def keyed(kind: str) -> str:
    """The kind of the keyed hashes of an identifier type's values (``shopify_order#keyed``)."""
    return f"{kind}#keyed"


def column_conditions(relation: Relation, dlt_dataset: bool) -> list[str]:
    """SQL conditions, one per identifier column of ``relation``, each true on the person's rows.
    In the BI snapshot an id column may hold the id's keyed hash instead: both are matched."""
    types = relation.column_types
    conditions = []
    for column, data_type in relation.columns:
        kind = OWNER_COLUMNS.get(column)
        if kind == EMAIL:
            conditions.append(_in(_email_sql(column), EMAIL))
        elif kind is not None:
            conditions.append(_in(f"trim(cast({_quote(column)} as varchar))", kind))
        if kind in IDENTIFIER_TYPES and relation.in_bi_snapshot:
            conditions.append(_in(f"cast({_quote(column)} as varchar)", keyed(kind)))
        for field_name, field_kind in JSON_FIELDS.get(column, {}).items():
            if data_type == "JSON":
                conditions.append(_in(f"({_quote(column)} ->> '{field_name}')", field_kind))
            elif data_type.startswith("STRUCT") and field_name in data_type:
                conditions.append(_in(f"{_quote(column)}.{field_name}", field_kind))
    for type_column, value_column in TYPED_COLUMNS:
        if type_column in types and value_column in types:
            node_key = f"{_quote(type_column)} || ':' || cast({_quote(value_column)} as varchar)"
            conditions.append(_in(node_key, NODE_KEY))
    if dlt_dataset and "id" in types and relation.name in RECORD_ID_TYPES:
        conditions.append(_in('cast("id" as varchar)', RECORD_ID_TYPES[relation.name]))
    if dlt_dataset and {"source_table", "record_id"} <= types.keys():
        cases = " ".join(f"when '{table}' then '{kind}'" for table, kind in RECORD_ID_TYPES.items())
        conditions.append(_in(f'(case "source_table" {cases} end) || \':\' || "record_id"', NODE_KEY))
    return conditions


def dlt_datasets(connection: duckdb.DuckDBPyConnection) -> set[str]:
    """The warehouse schemas dlt writes (raw_* and their raw_*_staging datasets)."""
    raw = set(settings.DATASETS.values())
    schemas = {
        schema for (schema,) in connection.execute("select schema_name from duckdb_schemas()").fetchall()
    }
    return {schema for schema in schemas if schema in raw or schema.removesuffix("_staging") in raw}


def dbt_relations() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(schema, name) of every dbt model, and of the incremental ones (never rebuilt by ``dbt build``)."""
    manifest_path = TARGET_DIR / MANIFEST_FILE
    if not manifest_path.exists():
        raise FileNotFoundError(f"no dbt manifest at {manifest_path}: run `shop360 dbt-parse` first")
    nodes = json.loads(manifest_path.read_text())["nodes"].values()
    models = [node for node in nodes if node["resource_type"] in ("model", "seed", "snapshot")]
    every = {(node["schema"], node["alias"]) for node in models}
    incremental = {
        (node["schema"], node["alias"]) for node in models if node["config"]["materialized"] == "incremental"
    }
    return every, incremental


def relations(connection: duckdb.DuckDBPyConnection, catalog: str, in_bi_snapshot: bool) -> list[Relation]:
    """Every user table and view of database ``catalog`` of the connection (dlt's own tables left out)."""
    rows = connection.execute(
        """
        select
            columns.schema_name,
            columns.table_name,
            list((columns.column_name, columns.data_type) order by columns.column_index),
            bool_or(views.view_name is not null)
        from duckdb_columns() as columns
        left join duckdb_views() as views
            on columns.database_name = views.database_name
            and columns.schema_name = views.schema_name
            and columns.table_name = views.view_name
        where columns.database_name = ?
            and not columns.internal
            and not starts_with(columns.table_name, '_dlt_')
        group by all
        order by 1, 2
        """,
        [catalog],
    ).fetchall()
    return [
        Relation(catalog, schema, name, tuple(columns), is_view, in_bi_snapshot)
        for schema, name, columns, is_view in rows
    ]


def _layer(relation: Relation, datasets: set[str], dbt_every: set, dbt_incremental: set) -> str:
    key = (relation.schema, relation.name)
    if relation.in_bi_snapshot:
        return "bi"
    if relation.schema in datasets:
        return "dlt_staging" if relation.schema.endswith("_staging") else "raw"
    if key in dbt_incremental:
        return "dbt_incremental"
    if key in dbt_every:
        return "view" if relation.is_view else "dbt"
    return "view" if relation.is_view else "other"


def _catalog_matches(
    found: list[Relation], datasets: set[str], dbt_every: set, dbt_incremental: set
) -> list[TableMatch]:
    """The matches of one catalog's relations; a nested dlt table also follows its root's rows."""
    by_name = {(item.schema, item.name): item for item in found}
    own = {
        (item.schema, item.name): column_conditions(item, item.schema in datasets and not item.in_bi_snapshot)
        for item in found
    }
    matches = []
    for item in found:
        if (item.schema, item.name) in PYTHON_OWNED and not item.in_bi_snapshot:
            continue
        conditions = list(own[(item.schema, item.name)])
        root = None
        if item.schema in datasets and "__" in item.name and "_dlt_root_id" in item.column_types:
            root = item.name.split("__")[0]
            if (root_relation := by_name.get((item.schema, root))) and own[(item.schema, root)]:
                root_owned = " or ".join(own[(item.schema, root)])
                conditions.append(
                    f'"_dlt_root_id" in (select "_dlt_id" from {root_relation.sql} where {root_owned})'
                )
        if conditions:
            owned = " or ".join(f"({condition})" for condition in conditions)
            phones = tuple(column for column in PHONE_COLUMNS if column in item.column_types)
            layer = _layer(item, datasets, dbt_every, dbt_incremental)
            matches.append(TableMatch(item, layer, owned, phones, root))
    return matches


def person_tables(connection: duckdb.DuckDBPyConnection, bi_catalog: str | None = None) -> list[TableMatch]:
    """How to find a person's rows in every relation that can hold them (the warehouse's, and the BI
    snapshot's when it is attached as ``bi_catalog``); nested dlt tables first, since they are
    matched through their root rows, which must still exist."""
    datasets = dlt_datasets(connection)
    dbt_every, dbt_incremental = dbt_relations()
    warehouse = connection.execute("select current_database()").fetchone()[0]
    found = relations(connection, warehouse, in_bi_snapshot=False)
    if bi_catalog:
        found += relations(connection, bi_catalog, in_bi_snapshot=True)
    matches = _catalog_matches(found, datasets, dbt_every, dbt_incremental)
    return sorted(
        matches, key=lambda match: (match.relation.in_bi_snapshot, -match.relation.name.count("__"))
    )


def bi_snapshot_path() -> Path:
    """The published BI snapshot (``data/bi/shop360.duckdb``)."""
    return paths.bi_dir() / SNAPSHOT_FILE


@contextlib.contextmanager
def attach_bi_snapshot(connection: duckdb.DuckDBPyConnection) -> Iterator[str | None]:
    """The BI snapshot attached read-only to ``connection`` as ``bi_snapshot`` (None when there is none)."""
    snapshot = bi_snapshot_path()
    if not snapshot.exists():
        yield None
        return
    connection.execute(f"attach '{snapshot}' as {BI_CATALOG} (read_only)")
    try:
        yield BI_CATALOG
    finally:
        connection.execute(f"detach {BI_CATALOG}")


def prepare(connection: duckdb.DuckDBPyConnection) -> None:
    """The connection's matching helpers: the phone normaliser (dbt's identity_phone in Python)."""
    code = default_calling_code()
    with contextlib.suppress(duckdb.CatalogException):  # registered on this connection before
        connection.create_function(
            PHONE_FUNCTION,
            lambda value: normalise_phone(value, code),
            [duckdb.sqltype("VARCHAR")],
            duckdb.sqltype("VARCHAR"),
            side_effects=False,
        )


def load_person(connection: duckdb.DuckDBPyConnection, person: Person, hash_key: str) -> None:
    """(Re)write the temporary ``erasure_person`` table with ``person``'s identifiers."""
    connection.execute(
        f"create or replace temp table {PERSON_TABLE} (identifier_type varchar, identifier_value varchar)"
    )
    rows = person.rows(hash_key)
    if rows:
        connection.executemany(f"insert into {PERSON_TABLE} values (?, ?)", rows)


def _table_exists(connection: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return connection.execute(
        "select count(*) > 0 from duckdb_tables() where schema_name = ? and table_name = ? "
        "and database_name = current_database()",
        [schema, table],
    ).fetchone()[0]


def _customer_keys(connection: duckdb.DuckDBPyConnection) -> set[str]:
    """The customer keys identity resolution gives any identifier in ``erasure_person`` now."""
    if not _table_exists(connection, "intermediate", "int_identity__person_identifiers"):
        return set()
    rows = connection.execute(
        f"""
        select distinct customer_key
        from intermediate.int_identity__person_identifiers
        where {_in("identifier_type || ':' || identifier_value", NODE_KEY)}
        """
    ).fetchall()
    return {key for (key,) in rows}


def _identifiers_of_keys(connection: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return connection.execute(
        f"""
        select identifier_type, identifier_value
        from intermediate.int_identity__person_identifiers
        where {_in("customer_key", CUSTOMER_KEY)}
        """
    ).fetchall()


def _owned_record_ids(
    connection: duckdb.DuckDBPyConnection, matches: list[TableMatch]
) -> list[tuple[str, str]]:
    """(type, id) of the raw records the person's identifiers own: customers, orders, checkouts and
    profiles by their id, customer or email; GA4 cookies by their id, login or purchase."""
    found = []
    for match in matches:
        if match.layer not in ("raw", "dlt_staging") or match.root is not None:
            continue
        name = match.relation.name
        if name in RECORD_ID_TYPES:
            column, kind = '"id"', RECORD_ID_TYPES[name]
        elif "user_pseudo_id" in match.relation.column_types:
            column, kind = '"user_pseudo_id"', GA4_COOKIE
        else:
            continue
        rows = connection.execute(
            f"select distinct cast({column} as varchar) from {match.relation.sql} "
            f"where ({match.owned}) and {column} is not null"
        ).fetchall()
        found += [(kind, value) for (value,) in rows]
    return found


def resolve_person(
    connection: duckdb.DuckDBPyConnection,
    requested: list[Identifier],
    hash_key: str,
    bi_catalog: str | None = None,
) -> tuple[Person, list[TableMatch]]:
    """The whole person behind ``requested`` (see the module docstring) and the tables to match
    them in (with the BI snapshot's, when attached as ``bi_catalog``); ``erasure_person`` holds
    them afterwards."""
    prepare(connection)
    person = Person(requested=list(requested))
    for item in requested:
        person.add(item.type, {item.value})
    load_person(connection, person, hash_key)
    person.customer_keys = _customer_keys(connection)
    if person.customer_keys:
        load_person(connection, person, hash_key)
        for identifier_type, value in _identifiers_of_keys(connection):
            person.add(identifier_type, {value})
    matches = person_tables(connection, bi_catalog)
    while True:
        load_person(connection, person, hash_key)
        new = sum(person.add(kind, {value}) for kind, value in _owned_record_ids(connection, matches))
        if not new:
            return person, matches


def match_person(
    connection: duckdb.DuckDBPyConnection, person: Person, hash_key: str, bi_catalog: str | None = None
) -> list[TableMatch]:
    """The tables to find an already resolved ``person`` in, on a new connection."""
    prepare(connection)
    load_person(connection, person, hash_key)
    return person_tables(connection, bi_catalog)


@dataclass
class RowCount:
    """A person's rows in one relation: theirs, and others' rows naming their phone."""

    match: TableMatch
    owned: int
    mentions: int = 0


def owned_rows(connection: duckdb.DuckDBPyConnection, matches: list[TableMatch]) -> list[RowCount]:
    """The person's rows (and phone mentions) in every matched relation."""
    counts = []
    for match in matches:
        owned = connection.execute(
            f"select count(*) from {match.relation.sql} where {match.owned}"
        ).fetchone()[0]
        mentions = 0
        if match.mentions:
            mentions = connection.execute(
                f"select count(*) from {match.relation.sql} where {match.mentions}"
            ).fetchone()[0]
        counts.append(RowCount(match, owned, mentions))
    return counts
