"""Publishing the BI snapshot, on a small warehouse of its own: policies, guards, the atomic swap.

The snapshot of the real marts is tested on the session's nightly run (tests/test_bi_snapshot.py)
and during runs (tests/test_bi_snapshot_runs.py); these tests cover what those runs cannot make
happen: a column that must be refused, a failed publish, several publishes in a row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest

from ingestion.pii import keyed_hash
from orchestration.publish import (
    DESCRIPTION_PARQUET,
    KEYED_HASH,
    PARQUET_LINK,
    SNAPSHOT_FILE,
    MartColumn,
    PublishError,
    guard_column,
    identifier_kind,
    publish_snapshot,
)

KEY = "test-hash-key"
ORDERS = [(5123456789012345, "k1", "first order", True), (5123456789012346, "k2", None, False)]


def _column(name: str, policy: str | None = None) -> dict:
    meta = {"bi_snapshot": policy} if policy else {}
    return {"name": name, "description": f"the {name}", "meta": {}, "config": {"meta": meta}}


def _manifest(path: Path, marts: dict[str, list[dict]]) -> Path:
    """A dbt manifest with the given mart models (and a staging model the snapshot must ignore)."""
    nodes = {
        f"model.shop360.{name}": {
            "resource_type": "model",
            "name": name,
            "schema": "marts",
            "description": f"the {name} mart",
            "columns": {column["name"]: column for column in columns},
        }
        for name, columns in marts.items()
    }
    nodes["model.shop360.stg_orders"] = {
        "resource_type": "model",
        "name": "stg_orders",
        "schema": "staging",
        "description": "",
        "columns": {"email": _column("email")},
    }
    path.write_text(json.dumps({"nodes": nodes}))
    return path


MARTS = {
    "orders": [
        _column("order_id", KEYED_HASH),
        _column("customer_key"),
        _column("note"),
        _column("is_paid"),
    ],
    "sessions": [_column("session_id", KEYED_HASH), _column("converted_order_id", KEYED_HASH)],
}


@pytest.fixture
def shop(tmp_path: Path) -> dict[str, Path]:
    """A warehouse with two marts, its manifest, and where the snapshot goes."""
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("create schema marts")
        connection.execute(
            "create table marts.orders (order_id bigint, customer_key varchar, note varchar, is_paid boolean)"
        )
        connection.executemany("insert into marts.orders values (?, ?, ?, ?)", ORDERS)
        connection.execute("create table marts.sessions (session_id varchar, converted_order_id bigint)")
        connection.execute(
            "insert into marts.sessions values ('a9f0e61a137d86aa9db53465e0801612', 5123456789012345), "
            "('b9f0e61a137d86aa9db53465e0801612', null)"
        )
        # not a mart: never published
        connection.execute("create schema staging")
        connection.execute("create table staging.customers as select 'a@example.com' as email")
    return {
        "warehouse": warehouse,
        "manifest": _manifest(tmp_path / "manifest.json", MARTS),
        "bi_dir": tmp_path / "bi",
    }


def _publish(shop: dict[str, Path], run_id: str = "run-1"):
    return publish_snapshot(shop["warehouse"], shop["bi_dir"], shop["manifest"], KEY, run_id)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("email", "an email address"),
        ("customer_email", "an email address"),
        ("email_address", "an email address"),
        ("phone", "a phone number"),
        ("billing_phone_number", "a phone number"),
        ("first_name", "a person's name"),
        ("name", "a person's name"),
        ("address1", "a postal address"),
        ("shipping_street_address", "a postal address"),
        ("zip", "a postal address"),
        ("browser_ip", "an IP address"),
        ("ip_address", "an IP address"),
        ("user_pseudo_id", "a cookie or device id"),
        ("cookie", "a cookie or device id"),
        ("checkout_token", "a token"),
        ("order_id", "a source-system id"),
        ("klaviyo_profile_id", "a source-system id"),
        ("email_hash", "a hash (declare how it was keyed)"),
        ("campaign_name", None),
        ("order_weekday_name", None),
        ("email_marketing_consent", None),
        ("emails_received", None),
        ("customer_key", None),
        ("product_title", None),
        ("paid", None),
    ],
)
def test_identifier_names_are_recognised_by_their_last_word(name: str, kind: str | None) -> None:
    assert identifier_kind(name) == kind


def test_the_guard_refuses_an_identifier_name_unless_it_is_hashed() -> None:
    with pytest.raises(PublishError, match=r"marts\.orders\.customer_email: its name looks like an email"):
        guard_column("orders", MartColumn("customer_email", "publish"), "VARCHAR")
    with pytest.raises(PublishError, match=r"marts\.orders\.order_id: .* a source-system id"):
        guard_column("orders", MartColumn("order_id", "publish"), "BIGINT")
    guard_column("orders", MartColumn("order_id", KEYED_HASH), "BIGINT")
    # a flag cannot hold an email address, whatever its name says
    guard_column("customers", MartColumn("may_email", "publish"), "BOOLEAN")


def test_a_snapshot_holds_every_mart_hashed_as_declared_and_describes_itself(shop: dict[str, Path]) -> None:
    snapshot = _publish(shop)
    bi_dir = shop["bi_dir"]
    assert snapshot.path == bi_dir / SNAPSHOT_FILE
    assert snapshot.rows == {"orders": 2, "sessions": 2}
    assert snapshot.hashed_columns == {
        "orders": ["order_id"],
        "sessions": ["session_id", "converted_order_id"],
    }
    # nothing but the file, the Parquet link and its folder: no WAL, no temporary file
    assert sorted(path.name for path in bi_dir.iterdir()) == sorted(
        [SNAPSHOT_FILE, PARQUET_LINK, snapshot.parquet_dir.name]
    )
    assert os.readlink(bi_dir / PARQUET_LINK) == snapshot.parquet_dir.name
    with duckdb.connect(str(snapshot.path), read_only=True) as connection:
        tables = connection.execute(
            "select schema_name || '.' || table_name from duckdb_tables() order by all"
        ).fetchall()
        assert tables == [("bi.snapshot",), ("marts.orders",), ("marts.sessions",)]
        orders = connection.execute("select * from marts.orders order by customer_key").fetchall()
        assert orders == [
            (keyed_hash(str(order_id), KEY), customer_key, note, paid)
            for order_id, customer_key, note, paid in ORDERS
        ]
        sessions = connection.execute("select * from marts.sessions").fetchall()
        assert set(sessions) == {
            (keyed_hash("a9f0e61a137d86aa9db53465e0801612", KEY), keyed_hash(str(ORDERS[0][0]), KEY)),
            (keyed_hash("b9f0e61a137d86aa9db53465e0801612", KEY), None),
        }
        described = connection.execute(
            "select table_name, row_count, hashed_columns, run_id, snapshot_version from bi.snapshot "
            "order by table_name"
        ).fetchall()
        assert described == [
            ("marts.orders", 2, "order_id", "run-1", snapshot.version),
            ("marts.sessions", 2, "session_id, converted_order_id", "run-1", snapshot.version),
        ]
        # the YAML documentation travels as comments BI tools show
        comment = connection.execute(
            "select comment from duckdb_columns() where table_name = 'orders' and column_name = 'order_id'"
        ).fetchone()[0]
        assert comment.startswith("the order_id") and "keyed hash" in comment
        # the Parquet files hold exactly what the DuckDB file holds
        for name in ("orders", "sessions"):
            parquet = bi_dir / PARQUET_LINK / f"{name}.parquet"
            assert (
                connection.execute(
                    f"select * from read_parquet('{parquet}') except all select * from marts.{name}"
                ).fetchall()
                == []
            )
            assert connection.execute(f"select count(*) from read_parquet('{parquet}')").fetchone()[0] == 2
        assert (bi_dir / PARQUET_LINK / DESCRIPTION_PARQUET).exists()


def test_only_the_new_and_the_previous_parquet_versions_are_kept(shop: dict[str, Path]) -> None:
    versions = [_publish(shop, f"run-{number}").parquet_dir.name for number in range(3)]
    bi_dir = shop["bi_dir"]
    assert len(set(versions)) == 3
    assert sorted(path.name for path in bi_dir.glob("parquet-*")) == sorted(versions[1:])
    assert os.readlink(bi_dir / PARQUET_LINK) == versions[2]
    with duckdb.connect(str(bi_dir / SNAPSHOT_FILE), read_only=True) as connection:
        assert connection.execute("select distinct run_id from bi.snapshot").fetchall() == [("run-2",)]


def _add_column(shop: dict[str, Path], definition: str, value: str, column: dict) -> None:
    with duckdb.connect(str(shop["warehouse"])) as connection:
        connection.execute(f"alter table marts.orders add column {definition}")
        connection.execute(f"update marts.orders set {definition.split()[0]} = ?", [value])
    _manifest(shop["manifest"], {**MARTS, "orders": [*MARTS["orders"], column]})


def _assert_previous_snapshot_intact(shop: dict[str, Path], previous) -> None:
    bi_dir = shop["bi_dir"]
    assert sorted(path.name for path in bi_dir.iterdir()) == sorted(
        [SNAPSHOT_FILE, PARQUET_LINK, previous.parquet_dir.name]
    )
    with duckdb.connect(str(bi_dir / SNAPSHOT_FILE), read_only=True) as connection:
        assert connection.execute("select distinct snapshot_version from bi.snapshot").fetchall() == [
            (previous.version,)
        ]


def test_an_identifier_column_without_a_hash_policy_is_refused_and_the_previous_snapshot_stays(
    shop: dict[str, Path],
) -> None:
    previous = _publish(shop)
    _add_column(shop, "customer_email varchar", "Anna@Example.com", _column("customer_email"))
    with pytest.raises(PublishError, match=r"marts\.orders\.customer_email: its name looks like an email"):
        _publish(shop, "run-2")
    _assert_previous_snapshot_intact(shop, previous)


def test_an_email_in_a_published_text_column_is_refused_without_showing_it(shop: dict[str, Path]) -> None:
    previous = _publish(shop)
    _add_column(shop, "remark varchar", "write to anna@example.com", _column("remark"))
    with pytest.raises(PublishError) as refused:
        _publish(shop, "run-2")
    assert str(refused.value) == (
        "refusing to publish marts.orders.remark: 2 of its values look like email addresses"
    )
    _assert_previous_snapshot_intact(shop, previous)


def test_a_declared_keyed_hash_must_look_like_one(shop: dict[str, Path]) -> None:
    _add_column(shop, "email_hash varchar", "d41d8cd98f00b204e9800998ecf8427e", _column("email_hash"))
    with pytest.raises(PublishError, match=r"marts\.orders\.email_hash: its name looks like a hash"):
        _publish(shop)
    _manifest(
        shop["manifest"], {**MARTS, "orders": [*MARTS["orders"], _column("email_hash", "already_keyed_hash")]}
    )
    with pytest.raises(PublishError, match=r"marts\.orders\.email_hash is declared already_keyed_hash but 2"):
        _publish(shop)


def test_a_column_the_manifest_does_not_document_is_refused(shop: dict[str, Path]) -> None:
    with duckdb.connect(str(shop["warehouse"])) as connection:
        connection.execute("alter table marts.orders add column discount double")
    with pytest.raises(PublishError, match=r"marts\.orders\.discount is not documented in the dbt manifest"):
        _publish(shop)
    _manifest(shop["manifest"], {**MARTS, "orders": [*MARTS["orders"], _column("discount", "scramble")]})
    with pytest.raises(PublishError, match=r"marts\.orders\.discount: unknown bi_snapshot policy 'scramble'"):
        _publish(shop)
