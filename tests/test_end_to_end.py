"""The whole nightly job on a small sandbox world, checked against the world's ground truth."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import dagster as dg

from orchestration.dbt_manifest import MANIFEST_FILE, TARGET_DIR
from orchestration.nightly import NightlyReport

STEPS = ("view_item", "add_to_cart", "begin_checkout", "add_shipping_info", "add_payment_info", "purchase")


def test_nightly_job_succeeds_with_every_check_passing(nightly: NightlyReport, truth: dict) -> None:
    assert nightly.success
    assert nightly.assets_materialized == nightly.assets_selected
    assert "marts/customer_360" in nightly.assets_materialized
    assert nightly.failed_checks == []
    # the world plants malformed records: quarantining them warns, it does not fail the run
    assert nightly.warnings == ["audit/quarantined_records:no_quarantined_records"]
    assert nightly.quarantined == len(truth["malformed"])
    assert nightly.checks_passed >= 50
    for schema in ("raw_shopify", "raw_klaviyo", "raw_ga4", "staging", "marts", "audit"):
        assert nightly.rows_per_schema[schema] > 0, schema
    # the world plants test accounts and shared mailboxes: the over-merge guard cuts them
    assert nightly.identifiers_cut > 0
    assert nightly.people > 100
    rendered = nightly.render()
    assert "nightly run succeeded" in rendered
    assert f"people: {nightly.people:,} in marts.customer_360" in rendered
    assert f"warehouse: {nightly.warehouse}" in rendered


def test_each_built_table_shows_its_row_count_and_each_mart_its_first_rows(
    nightly: NightlyReport, warehouse, dagster_home: Path
) -> None:
    # dbt's post-hook writes them while it builds (macros/build_metadata.sql)
    manifest = json.loads((TARGET_DIR / MANIFEST_FILE).read_text())
    materialized = {
        f"{node['schema']}/{node['alias']}": node["config"]["materialized"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    }
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        entries = instance.all_logs(nightly.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    metadata = {
        entry.asset_materialization.asset_key.to_user_string(): entry.asset_materialization.metadata
        for entry in entries
        if entry.asset_materialization.asset_key.to_user_string() in materialized
    }
    assert set(metadata) == {key for key, kind in materialized.items() if kind != "ephemeral"}
    for key, values in metadata.items():
        if materialized[key] == "view":
            assert "dagster/row_count" not in values, key
            continue
        schema, table = key.split("/")
        rows = warehouse.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
        assert values["dagster/row_count"].value == rows, key
        if schema != "marts":
            assert "preview" not in values, key
            continue
        preview = values["preview"].value
        columns = [row[0] for row in warehouse.execute(f'describe "{schema}"."{table}"').fetchall()]
        assert [column.name for column in preview.schema.columns] == columns, key
        assert len(preview.records) == min(5, rows), key


def test_net_revenue_equals_ground_truth(warehouse, truth: dict) -> None:
    customers_revenue = warehouse.execute("select sum(net_revenue) from marts.customer_360").fetchone()[0]
    assert customers_revenue == Decimal(truth["shopify"]["net_revenue_of_customers"])
    orders_revenue, counted = warehouse.execute(
        "select sum(net_revenue), count(*) filter (where not is_cancelled) from marts.fct_orders"
    ).fetchone()
    assert orders_revenue == Decimal(truth["shopify"]["net_revenue"])
    assert counted == truth["shopify"]["orders"]["counted"]
    customer_orders = warehouse.execute("select sum(orders) from marts.customer_360").fetchone()[0]
    assert customer_orders == truth["shopify"]["orders_of_customers"]


def test_malformed_records_are_quarantined_not_lost(warehouse, truth: dict) -> None:
    planted = sorted(
        (record["table"], str(record["id"])) for record in truth["malformed"] if record["source"] == "shopify"
    )
    quarantined = warehouse.execute(
        "select source_table, record_id from audit.quarantined_records "
        "where source_system = 'shopify' order by source_table, record_id"
    ).fetchall()
    assert planted, "the world plants malformed Shopify records"
    assert sorted(quarantined) == planted


def test_closed_funnel_equals_ground_truth(warehouse, truth: dict) -> None:
    sums = ", ".join(f"sum({step}_sessions)" for step in STEPS)
    totals = warehouse.execute(f"select {sums} from marts.fct_funnel_daily").fetchone()
    assert dict(zip(STEPS, totals, strict=True)) == truth["ga4"]["funnel"]


def test_funnel_per_day_device_and_channel_equals_ground_truth(warehouse, world: Path) -> None:
    truth_csv = world / "truth" / "funnel_daily.csv"
    truth = warehouse.execute(
        f"select date, device, channel, step, sessions from read_csv('{truth_csv}') where sessions > 0"
    ).fetchall()
    columns = ", ".join(f"('{step}', {step}_sessions)" for step in STEPS)
    marts = warehouse.execute(
        f"""
        select session_date, device_category, channel, step, reached
        from marts.fct_funnel_daily,
            lateral (select * from (values {columns}) as steps(step, reached))
        where reached > 0
        """
    ).fetchall()
    assert len(truth) > 100
    assert sorted(marts) == sorted(truth)


def test_no_secret_reaches_the_warehouse(warehouse, world: Path) -> None:
    """The API tokens the run used appear in no text column of any table."""
    tokens = json.loads((world / "world" / "meta.json").read_text())["api_tokens"].values()
    columns = warehouse.execute(
        "select schema_name, table_name, column_name from duckdb_columns() "
        "where data_type in ('VARCHAR', 'JSON') and not internal"
    ).fetchall()
    assert len(columns) > 50
    for schema, table, column in columns:
        for token in tokens:
            hits = warehouse.execute(
                f'select count(*) from "{schema}"."{table}" where contains("{column}"::varchar, ?)', [token]
            ).fetchone()[0]
            assert hits == 0, f"{token[:6]}… found in {schema}.{table}.{column}"
