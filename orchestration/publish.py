"""The BI snapshot: the marts, published for BI tools in files of their own and swapped in atomically.

After every successful nightly run the marts are copied from the writer's warehouse into a *new*
DuckDB file under ``data/bi/`` and, from that file, into one Parquet file per mart in a *new*
versioned folder ``data/bi/parquet-<version>/``. Only when both are complete, closed and on disk do
they replace the previous snapshot: ``os.replace`` of the symlink ``data/bi/parquet`` (pointing to
the new folder) and of ``data/bi/shop360.duckdb``. A BI tool reading them during a run sees the
previous snapshot or the new one, never half of one, and never opens the writer's warehouse (DuckDB
refuses readers while another process writes it). The folder before the new one is kept for readers
still inside it; older ones are removed.

The snapshot holds no direct identifiers. Each mart column's policy is declared beside its
documentation in the marts' YAML (``config: {meta: {bi_snapshot: …}}``) and read here from dbt's
``target/manifest.json``:

- no policy: the column is published as it is;
- ``keyed_hash``: a raw source-system id; published as its keyed hash (HMAC-SHA256 under the secret
  ``shop360.hash_key`` of the value as text, ``ingestion.pii.keyed_hash``, computed by DuckDB:
  ``keyed_hash_sql``), so BI joins between marts still work but nobody can look the id up in
  Shopify, Klaviyo or GA4;
- ``already_keyed_hash``: the model computes the keyed hash itself (``email_hash``); published as it
  is after checking every value is 64 hex digits.

A column whose name looks like a direct identifier (email, phone, name, address, IP, token, cookie,
a source id ``…_id``, a ``…_hash``) is refused unless its policy hashes it, and a text column
published as it is must hold no value that looks like an email address.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ingestion import warehouse as warehouse_db
from ingestion.pii import keyed_hash_pads, keyed_hash_sql

SNAPSHOT_FILE = "shop360.duckdb"
PARQUET_LINK = "parquet"
PARQUET_VERSION_PREFIX = "parquet-"
# The snapshot's own description, a table of the DuckDB file and a file beside the Parquet marts
DESCRIPTION_TABLE = "bi.snapshot"
DESCRIPTION_PARQUET = "_snapshot.parquet"
MARTS_SCHEMA = "marts"

POLICY_KEY = "bi_snapshot"
PUBLISH = "publish"
KEYED_HASH = "keyed_hash"
ALREADY_KEYED_HASH = "already_keyed_hash"
POLICIES = (PUBLISH, KEYED_HASH, ALREADY_KEYED_HASH)
HASHING_POLICIES = (KEYED_HASH, ALREADY_KEYED_HASH)

# Column names that look like a direct identifier, matched against the whole lower-case name. The
# identifying noun is the last word (customer_email is an email, email_marketing_consent is not);
# "name" only counts for a person's name (campaign_name and product_title are fine).
DIRECT_IDENTIFIER_NAMES: dict[str, re.Pattern[str]] = {
    kind: re.compile(pattern)
    for kind, pattern in {
        "an email address": r"(.+_)?e_?mail(_address)?",
        "a phone number": r"(.+_)?(phone|phone_number|mobile|mobile_number|telephone|msisdn)",
        "a person's name": (
            r"((first|last|full|given|family|middle|customer|person|contact|billing|shipping|recipient"
            r"|user)_?)?name|username"
        ),
        "an IP address": r"(.+_)?(ip|ip_address)",
        "a postal address": (
            r"(.+_)?(address|address_?[12]|address_line_?[12]|street|street_address|zip|zip_code"
            r"|postal_code|postcode)"
        ),
        "a cookie or device id": r"(.+_)?(user_pseudo_id|pseudo_id|cookie|cookie_id|client_id|device_id)",
        "a token": r"(.+_)?token",
        "a source-system id": r"(.+_)?id",
        "a hash (declare how it was keyed)": r"(.+_)?hash",
    }.items()
}
# Types that cannot hold an identifier (identifiers are text or integers): may_email is a flag
VALUE_ONLY_TYPES = re.compile(r"BOOLEAN|DATE|TIME.*|INTERVAL|FLOAT|DOUBLE|REAL|DECIMAL\(.*\)")
# What a text value published as it is must not look like (staging's is_valid_email rule)
EMAIL_VALUE = r"[^@\s]+@[^@\s]+\.[^@\s]+"
KEYED_HASH_VALUE = r"[0-9a-f]{64}"


class PublishError(RuntimeError):
    """The snapshot cannot be published; the previous one stays in place."""


@dataclass(frozen=True)
class MartColumn:
    """A documented mart column and how the snapshot publishes it."""

    name: str
    policy: str
    description: str = ""


@dataclass(frozen=True)
class Mart:
    """A mart as dbt's manifest documents it."""

    name: str
    description: str
    columns: dict[str, MartColumn]

    @property
    def relation(self) -> str:
        return f'"{MARTS_SCHEMA}"."{self.name}"'


@dataclass
class Snapshot:
    """A published snapshot: where it is and what it holds."""

    path: Path
    parquet_dir: Path
    version: str
    run_id: str
    published_at: datetime
    rows: dict[str, int] = field(default_factory=dict)
    hashed_columns: dict[str, list[str]] = field(default_factory=dict)
    size_bytes: int = 0
    parquet_bytes: int = 0
    seconds: float = 0.0


def column_policy(mart: str, column: str, properties: dict) -> str:
    """The ``bi_snapshot`` policy a column's YAML declares (``config.meta``, or ``meta``)."""
    meta = {**properties.get("meta", {}), **properties.get("config", {}).get("meta", {})}
    policy = meta.get(POLICY_KEY, PUBLISH)
    if policy not in POLICIES:
        raise PublishError(
            f"marts.{mart}.{column}: unknown {POLICY_KEY} policy {policy!r} in its YAML "
            f"(one of {', '.join(POLICIES)})"
        )
    return policy


def read_marts(manifest_path: Path) -> list[Mart]:
    """Every model of the marts schema in dbt's manifest, with its documented columns' policies."""
    if not manifest_path.exists():
        raise PublishError(f"no dbt manifest at {manifest_path}: run `shop360 dbt-parse` first")
    manifest = json.loads(manifest_path.read_text())
    marts = [
        Mart(
            name=node["name"],
            description=node.get("description", ""),
            columns={
                name: MartColumn(
                    name, column_policy(node["name"], name, properties), properties["description"]
                )
                for name, properties in node["columns"].items()
            },
        )
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["schema"] == MARTS_SCHEMA
    ]
    if not marts:
        raise PublishError(f"the dbt manifest {manifest_path} has no model in schema {MARTS_SCHEMA}")
    return sorted(marts, key=lambda mart: mart.name)


def identifier_kind(column: str) -> str | None:
    """What direct identifier a column name looks like (``None`` when it looks like none)."""
    name = column.lower()
    return next((kind for kind, pattern in DIRECT_IDENTIFIER_NAMES.items() if pattern.fullmatch(name)), None)


def guard_column(mart: str, column: MartColumn, data_type: str) -> None:
    """Refuse a column that can hold an identifier (text, integers, nested values) and whose name
    looks like a direct identifier, unless its policy hashes it."""
    if VALUE_ONLY_TYPES.fullmatch(data_type):
        return
    kind = identifier_kind(column.name)
    if kind and column.policy not in HASHING_POLICIES:
        raise PublishError(
            f"refusing to publish marts.{mart}.{column.name}: its name looks like {kind}. Hash it in the "
            f"snapshot (config: {{meta: {{{POLICY_KEY}: {KEYED_HASH}}}}} on the column in "
            "transform/models/marts/*.yml), or leave it out of the mart"
        )


def published_columns(connection: duckdb.DuckDBPyConnection, mart: Mart) -> list[MartColumn]:
    """The mart's warehouse columns in table order, each with its documented policy, guarded."""
    types = dict(
        connection.execute(
            "select column_name, data_type from duckdb_columns() where database_name = 'warehouse' "
            "and schema_name = ? and table_name = ? order by column_index",
            [MARTS_SCHEMA, mart.name],
        ).fetchall()
    )
    names = list(types)
    if not names:
        raise PublishError(f"marts.{mart.name} is in the dbt manifest but not in the warehouse")
    if undocumented := [name for name in names if name not in mart.columns]:
        raise PublishError(
            f"marts.{mart.name}.{undocumented[0]} is not documented in the dbt manifest, so its "
            f"{POLICY_KEY} policy is unknown: document it in transform/models/marts/*.yml"
        )
    if missing := [name for name in mart.columns if name not in names]:
        raise PublishError(
            f"marts.{mart.name}.{missing[0]} is documented but not in the warehouse: build the marts first"
        )
    columns = [mart.columns[name] for name in names]
    for column in columns:
        guard_column(mart.name, column, types[column.name])
    return columns


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _select_list(columns: list[MartColumn]) -> str:
    expressions = [
        f"{keyed_hash_sql(f'cast({_quoted(column.name)} as varchar)')} as {_quoted(column.name)}"
        if column.policy == KEYED_HASH
        else _quoted(column.name)
        for column in columns
    ]
    return ",\n    ".join(expressions)


def check_values(connection: duckdb.DuckDBPyConnection, mart: Mart, columns: list[MartColumn]) -> None:
    """What the snapshot holds, checked: keyed hashes are 64 hex digits; no text published as it is
    looks like an email address. Errors name the table and column, never a value."""
    types = dict(
        connection.execute(
            "select column_name, data_type from duckdb_columns() where database_name = current_database() "
            "and schema_name = ? and table_name = ?",
            [MARTS_SCHEMA, mart.name],
        ).fetchall()
    )
    for column in columns:
        name = _quoted(column.name)
        if column.policy == ALREADY_KEYED_HASH:
            bad = connection.execute(
                f"select count(*) from {mart.relation} where {name} is not null "
                f"and not regexp_full_match({name}, '{KEYED_HASH_VALUE}')"
            ).fetchone()[0]
            if bad:
                raise PublishError(
                    f"marts.{mart.name}.{column.name} is declared {ALREADY_KEYED_HASH} but {bad} of its "
                    "values are not 64 hex digits"
                )
        elif column.policy == PUBLISH and types[column.name] == "VARCHAR":
            # an email has an @: the regular expression runs on those values only (the funnel
            # sessions' 10 text columns at size M: 0.05 s against 0.47 s)
            bad = connection.execute(
                f"select count(*) from {mart.relation} "
                f"where contains({name}, '@') and regexp_matches({name}, '{EMAIL_VALUE}')"
            ).fetchone()[0]
            if bad:
                raise PublishError(
                    f"refusing to publish marts.{mart.name}.{column.name}: {bad} of its values look like "
                    "email addresses"
                )


def comment(connection: duckdb.DuckDBPyConnection, mart: Mart, columns: list[MartColumn]) -> None:
    """The YAML documentation as table and column comments, so BI tools show it."""
    connection.execute(f"comment on table {mart.relation} is {_literal(mart.description.strip())}")
    for column in columns:
        text = column.description.strip()
        if column.policy == KEYED_HASH and "keyed hash" not in text.lower():
            text += " In the BI snapshot: a keyed hash of the warehouse value."
        connection.execute(f"comment on column {mart.relation}.{_quoted(column.name)} is {_literal(text)}")


def copy_marts(
    connection: duckdb.DuckDBPyConnection, marts: list[Mart], snapshot: Snapshot, hash_key: str
) -> None:
    """Every mart from the attached warehouse into the new file, guarded, hashed and checked."""
    connection.execute(f"create schema {MARTS_SCHEMA}")
    for mart in marts:
        columns = published_columns(connection, mart)
        hashes = any(column.policy == KEYED_HASH for column in columns)
        connection.execute(
            f"create table {mart.relation} as select\n    {_select_list(columns)}\n"
            f'from warehouse."{MARTS_SCHEMA}"."{mart.name}"',
            keyed_hash_pads(hash_key) if hashes else None,
        )
        check_values(connection, mart, columns)
        comment(connection, mart, columns)
        snapshot.rows[mart.name] = connection.execute(f"select count(*) from {mart.relation}").fetchone()[0]
        snapshot.hashed_columns[mart.name] = [
            column.name for column in columns if column.policy in HASHING_POLICIES
        ]


def describe(connection: duckdb.DuckDBPyConnection, snapshot: Snapshot) -> None:
    """The snapshot's own description: one row per mart with the run, the time and its rows."""
    schema = DESCRIPTION_TABLE.split(".")[0]
    connection.execute(f"create schema {schema}")
    connection.execute(
        f"""
        create table {DESCRIPTION_TABLE} (
            snapshot_version varchar not null,
            run_id varchar not null,
            published_at timestamp not null,
            table_name varchar not null,
            row_count bigint not null,
            hashed_columns varchar not null,
            parquet_file varchar not null
        )
        """
    )
    published_at = snapshot.published_at.astimezone(UTC).replace(tzinfo=None)
    connection.executemany(
        f"insert into {DESCRIPTION_TABLE} values (?, ?, ?, ?, ?, ?, ?)",
        [
            [
                snapshot.version,
                snapshot.run_id,
                published_at,
                f"{MARTS_SCHEMA}.{name}",
                rows,
                ", ".join(snapshot.hashed_columns[name]),
                f"{name}.parquet",
            ]
            for name, rows in snapshot.rows.items()
        ],
    )
    connection.execute(
        f"comment on table {DESCRIPTION_TABLE} is "
        + _literal(
            "This snapshot: one row per mart with the Dagster run that published it, when (UTC), its "
            "rows, the columns holding keyed hashes and its Parquet file."
        )
    )


def write_parquet(connection: duckdb.DuckDBPyConnection, snapshot: Snapshot) -> None:
    """One Parquet file per mart, and the description, from the new file (so both hold the same)."""
    snapshot.parquet_dir.mkdir()
    for name in snapshot.rows:
        target = snapshot.parquet_dir / f"{name}.parquet"
        connection.execute(
            f"copy {MARTS_SCHEMA}.{_quoted(name)} to {_literal(str(target))} "
            "(format parquet, compression zstd)"
        )
    target = snapshot.parquet_dir / DESCRIPTION_PARQUET
    connection.execute(f"copy {DESCRIPTION_TABLE} to {_literal(str(target))} (format parquet)")


def fsync(path: Path) -> None:
    """Flush a file or a directory (its entries) to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def swap_symlink(link: Path, target_name: str) -> str | None:
    """Point ``link`` at ``target_name`` (relative, beside it) in one rename; the old target, if any."""
    if link.exists() and not link.is_symlink():
        raise PublishError(
            f"{link} is not a symlink: move it away so the snapshot's Parquet link can replace it"
        )
    previous = os.readlink(link) if link.is_symlink() else None
    temporary = link.with_name(f".{link.name}.{target_name}.tmp")
    temporary.unlink(missing_ok=True)
    os.symlink(target_name, temporary)
    os.replace(temporary, link)
    return previous


def remove_unfinished(bi_dir: Path) -> None:
    """Remove the temporary files of a publish that never finished (publishes never overlap)."""
    for path in bi_dir.glob(".*.tmp*"):
        path.unlink()


def remove_old_versions(bi_dir: Path, keep: set[str]) -> None:
    """Remove every Parquet version folder but those in ``keep`` (the new one and the previous)."""
    for path in bi_dir.glob(f"{PARQUET_VERSION_PREFIX}*"):
        if path.name not in keep and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)


def publish_snapshot(warehouse: Path, bi_dir: Path, manifest: Path, hash_key: str, run_id: str) -> Snapshot:
    """Publish the warehouse's marts as the BI snapshot in ``bi_dir`` and return what was published.

    Runs in the warehouse writers' pool: it reads the warehouse (attached read-only) while no writer
    holds it. On any error the new files are removed and the previous snapshot stays in place.
    """
    started = time.perf_counter()
    marts = read_marts(manifest)
    if not warehouse.exists():
        raise PublishError(f"no warehouse at {warehouse}: run the nightly job first")
    bi_dir.mkdir(parents=True, exist_ok=True)
    remove_unfinished(bi_dir)
    link = bi_dir / PARQUET_LINK
    published_at = datetime.now(UTC)
    version = f"{published_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    temporary = bi_dir / f".{SNAPSHOT_FILE}.{version}.tmp"
    snapshot = Snapshot(
        path=bi_dir / SNAPSHOT_FILE,
        parquet_dir=bi_dir / f"{PARQUET_VERSION_PREFIX}{version}",
        version=version,
        run_id=run_id,
        published_at=published_at,
    )
    previous_version = None
    try:
        write_files(warehouse, temporary, marts, hash_key, snapshot)
        previous_version = swap_symlink(link, snapshot.parquet_dir.name)
        os.replace(temporary, snapshot.path)
        fsync(bi_dir)
    except BaseException:
        if link.is_symlink() and os.readlink(link) == snapshot.parquet_dir.name and previous_version:
            swap_symlink(link, previous_version)
        remove_unfinished(bi_dir)
        shutil.rmtree(snapshot.parquet_dir, ignore_errors=True)
        raise
    remove_old_versions(bi_dir, keep={snapshot.parquet_dir.name, previous_version or ""})
    snapshot.size_bytes = snapshot.path.stat().st_size
    snapshot.parquet_bytes = sum(path.stat().st_size for path in snapshot.parquet_dir.iterdir())
    snapshot.seconds = time.perf_counter() - started
    return snapshot


def write_files(
    warehouse: Path, temporary: Path, marts: list[Mart], hash_key: str, snapshot: Snapshot
) -> None:
    """The new DuckDB file (closed, checkpointed, without WAL, on disk) and its Parquet folder."""
    with warehouse_db.connect(temporary) as connection:
        connection.execute(f"attach {_literal(str(warehouse))} as warehouse (read_only)")
        copy_marts(connection, marts, snapshot, hash_key)
        connection.execute("detach warehouse")
        describe(connection, snapshot)
        write_parquet(connection, snapshot)
        connection.execute("checkpoint")
    wal = Path(f"{temporary}.wal")
    if wal.exists():
        raise PublishError(
            f"DuckDB left a write-ahead log beside the new snapshot ({wal}); not publishing it"
        )
    fsync(temporary)
    for path in snapshot.parquet_dir.iterdir():
        fsync(path)
    fsync(snapshot.parquet_dir)
