"""The BI snapshot the session's nightly run published: every mart, hashed ids, and no personal data.

The PII scan reads every column of every table of the DuckDB file and of every Parquet file for the
world's direct identifiers (tests/pii_scan.py), and a copy with one planted email and one raw order
id proves the scan finds exactly those.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from ingestion.pii import keyed_hash
from orchestration.dbt_manifest import MANIFEST_FILE, TARGET_DIR
from orchestration.nightly import NightlyReport
from orchestration.publish import DESCRIPTION_PARQUET, KEYED_HASH, PARQUET_LINK, read_marts
from tests.pii_scan import Finding, parquet_relations, planted_identifiers, scan, snapshot_relations

MANIFEST = TARGET_DIR / MANIFEST_FILE
# Joins between hashed columns that BI queries make: (table, column) pairs holding the same ids
HASHED_JOINS = [
    (("fct_funnel_sessions", "converted_order_id"), ("fct_orders", "order_id")),
    (("fct_orders", "click_attributed_campaign_id"), ("email_campaign_performance", "campaign_id")),
    (("fct_orders", "open_attributed_campaign_id"), ("email_campaign_performance", "campaign_id")),
    (("product_affinity", "product_a_id"), ("top_products", "product_id")),
    (("repurchase_cycles", "product_id"), ("top_products", "product_id")),
]


@pytest.fixture(scope="module")
def snapshot_file(nightly: NightlyReport) -> Path:
    assert nightly.success, nightly.render()
    assert nightly.bi_published and nightly.bi_snapshot is not None
    return nightly.bi_snapshot


@pytest.fixture(scope="module")
def snapshot(snapshot_file: Path, warehouse: duckdb.DuckDBPyConnection):
    """The snapshot and the warehouse, attached read-only to one in-memory connection."""
    with duckdb.connect() as connection:
        connection.execute(f"attach '{snapshot_file}' as snapshot (read_only)")
        connection.execute(f"attach '{warehouse_path(warehouse)}' as warehouse (read_only)")
        yield connection


def warehouse_path(warehouse: duckdb.DuckDBPyConnection) -> str:
    return warehouse.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchone()[0]


@pytest.fixture(scope="module")
def planted(world: Path) -> dict[str, set[str]]:
    return planted_identifiers(world)


def _hashed_columns() -> dict[str, list[str]]:
    return {
        mart.name: [column.name for column in mart.columns.values() if column.policy == KEYED_HASH]
        for mart in read_marts(MANIFEST)
    }


def test_the_snapshot_holds_every_mart_with_the_warehouse_row_counts(
    snapshot: duckdb.DuckDBPyConnection, snapshot_file: Path, nightly: NightlyReport
) -> None:
    marts = sorted(mart.name for mart in read_marts(MANIFEST))
    tables = snapshot.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = 'snapshot' order by all"
    ).fetchall()
    assert tables == [("bi", "snapshot"), *(("marts", name) for name in marts)]
    assert len(marts) >= 12 and "audience_reactivation" in marts
    described = dict(snapshot.execute("select table_name, row_count from snapshot.bi.snapshot").fetchall())
    assert snapshot.execute("select distinct run_id from snapshot.bi.snapshot").fetchall() == [
        (nightly.run_id,)
    ]
    parquet = snapshot_file.with_name(PARQUET_LINK)
    for name in marts:
        rows = snapshot.execute(f"select count(*) from warehouse.marts.{name}").fetchone()[0]
        assert snapshot.execute(f"select count(*) from snapshot.marts.{name}").fetchone()[0] == rows, name
        assert described[f"marts.{name}"] == rows, name
        assert snapshot.execute(f"select count(*) from '{parquet / name}.parquet'").fetchone()[0] == rows
        assert rows > 0 or name == "audience_reactivation", name
    assert sorted(path.name for path in parquet.iterdir()) == sorted(
        [DESCRIPTION_PARQUET, *(f"{name}.parquet" for name in marts)]
    )
    # nothing else beside it: no write-ahead log, no unfinished file, one Parquet version so far
    assert sorted(path.name for path in snapshot_file.parent.iterdir()) == sorted(
        [snapshot_file.name, PARQUET_LINK, os.readlink(parquet)]
    )
    assert f"BI snapshot: {snapshot_file} (published by this run" in nightly.render()


def test_hashed_columns_are_keyed_hashes_that_still_join_across_marts(
    snapshot: duckdb.DuckDBPyConnection, world: Path
) -> None:
    hashed = _hashed_columns()
    assert hashed["fct_orders"] == ["order_id", "click_attributed_campaign_id", "open_attributed_campaign_id"]
    assert hashed["fct_funnel_sessions"] == ["session_id", "converted_order_id"]
    for mart, columns in hashed.items():
        types = dict(
            snapshot.execute(
                "select column_name, data_type from duckdb_columns() "
                "where database_name = 'snapshot' and schema_name = 'marts' and table_name = ?",
                [mart],
            ).fetchall()
        )
        for column in columns:
            assert types[column] == "VARCHAR", f"{mart}.{column}"
            not_hashes = snapshot.execute(
                f"select count(*) from snapshot.marts.{mart} where {column} is not null "
                f"and not regexp_full_match({column}, '[0-9a-f]{{64}}')"
            ).fetchone()[0]
            assert not_hashes == 0, f"{mart}.{column}"
    # the hash is HMAC-SHA256 of the id as text under the world's key
    key = json.loads((world / "world" / "meta.json").read_text())["hash_key"]
    order_ids = [
        order_id
        for (order_id,) in snapshot.execute("select order_id from warehouse.marts.fct_orders").fetchall()
    ]
    published = {
        order_id
        for (order_id,) in snapshot.execute("select order_id from snapshot.marts.fct_orders").fetchall()
    }
    assert published == {keyed_hash(str(order_id), key) for order_id in order_ids}
    # every join a BI query makes between hashed columns finds the same rows as in the warehouse
    for (left, left_column), (right, right_column) in HASHED_JOINS:
        counts = [
            snapshot.execute(
                f"select count(*) from {database}.marts.{left} as l "
                f"inner join {database}.marts.{right} as r on l.{left_column} = r.{right_column}"
            ).fetchone()[0]
            for database in ("warehouse", "snapshot")
        ]
        assert counts[0] == counts[1] > 0, (left, left_column, right, right_column)


def test_no_direct_identifier_of_the_world_is_in_the_snapshot(
    snapshot: duckdb.DuckDBPyConnection, snapshot_file: Path, planted: dict[str, set[str]], world: Path
) -> None:
    # nor a secret: the API tokens and the hash key
    meta = json.loads((world / "world" / "meta.json").read_text())
    planted = {**planted, "secret": {*meta["api_tokens"].values(), meta["hash_key"]}}
    # what the scan looks for: the world's identifiers of every kind
    for kind in ("email", "phone", "shopify_customer_id", "shopify_order_id", "shopify_checkout_id"):
        assert len(planted[kind]) > 100, kind
    for kind in ("shopify_checkout_token", "klaviyo_profile_id", "ga4_user_pseudo_id", "ga4_user_id"):
        assert len(planted[kind]) > 50, kind
    relations = snapshot_relations(snapshot, "snapshot")
    assert len(relations) >= 13
    assert scan(snapshot, relations, planted) == []
    # the same scan of the warehouse's marts finds the raw ids the snapshot hashes
    warehouse_marts = {
        name: relation
        for name, relation in snapshot_relations(snapshot, "warehouse").items()
        if name.startswith("marts.")
    }
    in_warehouse = {
        (finding.table, finding.column, finding.kind) for finding in scan(snapshot, warehouse_marts, planted)
    }
    assert {
        ("marts.fct_orders", "order_id", "shopify_order_id"),
        ("marts.fct_funnel_sessions", "converted_order_id", "shopify_order_id"),
    } <= in_warehouse
    parquet = parquet_relations(snapshot_file.with_name(PARQUET_LINK).resolve())
    assert len(parquet) == len(relations)
    assert scan(snapshot, parquet, planted) == []


def test_the_scan_finds_a_planted_email_and_a_raw_order_id(
    snapshot_file: Path, planted: dict[str, set[str]], world: Path, tmp_path: Path
) -> None:
    leaked = tmp_path / "leaked.duckdb"
    shutil.copy(snapshot_file, leaked)
    customer = json.loads((world / "world" / "shopify" / "customers.jsonl").open().readline())
    order = json.loads((world / "world" / "shopify" / "orders.jsonl").open().readline())
    with duckdb.connect(str(leaked)) as connection:
        # an email as the customer typed it, inside a text column; a raw order id in a number column
        connection.execute(
            "update marts.customer_360 set city = 'Oslo <' || ? || '>' "
            "where customer_key = (select min(customer_key) from marts.customer_360)",
            [customer["email"].upper()],
        )
        connection.execute(
            "update marts.purchase_timing set orders = ? where order_weekday = 1 and order_hour = 12",
            [order["id"]],
        )
        relations = snapshot_relations(connection, "leaked")
        assert scan(connection, relations, planted) == [
            Finding("marts.customer_360", "city", "email", 1),
            Finding("marts.purchase_timing", "orders", "shopify_order_id", 1),
        ]
        folder = tmp_path / "parquet"
        folder.mkdir()
        connection.execute(f"copy marts.purchase_timing to '{folder / 'purchase_timing.parquet'}'")
        connection.execute(f"copy marts.top_products to '{folder / 'top_products.parquet'}'")
        assert scan(connection, parquet_relations(folder), planted) == [
            Finding("purchase_timing.parquet", "orders", "shopify_order_id", 1)
        ]
