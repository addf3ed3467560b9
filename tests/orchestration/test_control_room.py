"""The control room: quality checks that block bad data, freshness, alerts and GA4 backfills.

One world of its own, recorded in a persistent Dagster instance, is broken on purpose step by step
(the tests run in file order; each repairs what it broke, the last one shrinks the orders for good):
a duplicate key, an altered order, a stale source, a shrunken table. A local HTTP listener stands
in for the Slack webhook.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.definitions.freshness_evaluator import TimeWindowFreshnessPolicyEvaluator
from dagster._core.loader import LoadingContextForTest
from dagster._core.test_utils import freeze_time
from dagster._daemon.freshness import FreshnessDaemon
from dagster_dlt import DagsterDltResource

from orchestration.alerts import build_freshness_alert, check_failure_alert, run_failure_alert
from orchestration.checks import ga4_partition_freshness
from orchestration.cli import DAGSTER_YAML
from orchestration.definitions import defs
from orchestration.nightly import NightlyReport, run_nightly
from orchestration.raw_assets import GA4_EVENTS, raw_assets
from tests.conftest import gzip_lines, own_world

ORDERS = dg.AssetKey(["raw_shopify", "orders"])


@dataclass
class Room:
    directory: Path
    home: Path
    instance: dg.DagsterInstance
    first: NightlyReport

    @property
    def warehouse(self) -> Path:
        return self.directory / "warehouse.duckdb"

    def sql(self, statement: str, parameters: list | None = None) -> list[tuple]:
        """Run ``statement`` on the warehouse as its writer (between runs, as a person with a shell would)."""
        with duckdb.connect(str(self.warehouse)) as connection:
            return connection.execute(statement, parameters or []).fetchall()

    def evaluations(self, run_id: str) -> dict[str, dg.AssetCheckEvaluation]:
        """``asset:check`` → the check's evaluation in run ``run_id``."""
        entries = self.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        return {
            f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}": evaluation
            for evaluation in (entry.dagster_event.event_specific_data for entry in entries)
        }

    def latest_materialization(self, key: dg.AssetKey) -> dg.AssetMaterialization:
        records = self.instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
        return records[0].asset_materialization


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    for directory in own_world(tmp_path_factory.mktemp("control_room")):
        home = directory / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(DAGSTER_YAML)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            first = run_nightly(instance)
            yield Room(directory, home, instance, first)


class Webhook:
    """A Slack-compatible webhook on loopback that keeps what it receives."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.headers["Content-Type"], json.loads(body)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/XXXX"


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    hook = Webhook()
    monkeypatch.setenv("SHOP360_ALERT_WEBHOOK_URL", hook.url)
    yield hook
    hook.server.shutdown()


def _assert_slack_message(received: list, *expected: str) -> str:
    """One well-formed Slack message arrived, and its text holds every ``expected`` string."""
    assert len(received) == 1, received
    content_type, message = received[0]
    assert content_type == "application/json"
    assert message["text"].startswith("shop360: ")
    assert [block["type"] for block in message["blocks"]] == ["header", "section"]
    text = message["text"] + "\n" + message["blocks"][1]["text"]["text"]
    for part in expected:
        assert part in text, text
    return text


def test_a_clean_night_passes_every_check_with_its_numbers(room: Room) -> None:
    report = room.first
    assert report.success, report.render()
    assert report.failed_checks == []
    assert report.warnings == ["audit/quarantined_records:no_quarantined_records"]
    evaluations = room.evaluations(report.run_id)
    # one uniqueness and one row-count check per raw Shopify and Klaviyo table, all passing
    for table in ("customers", "orders", "products", "checkouts"):
        assert evaluations[f"raw_shopify/{table}:primary_key_unique"].passed
        assert evaluations[f"raw_shopify/{table}:row_count_change"].metadata["previous_rows"].value == (
            "no earlier run"
        )
    assert evaluations["raw_klaviyo/events:primary_key_unique"].metadata["primary_key"].value == "id"
    assert not any(key.startswith("raw_klaviyo/list_memberships") for key in evaluations)
    # reconciliation: the raw orders, recomputed without dbt, equal the mart and the world's truth
    truth = json.loads((room.directory / "sandbox" / "truth" / "summary.json").read_text())
    reconciliation = evaluations["marts/fct_orders:reconciles_with_shopify"]
    assert reconciliation.passed
    metadata = {name: value.value for name, value in reconciliation.metadata.items()}
    assert metadata["raw_orders"] == metadata["mart_orders"]
    assert Decimal(str(metadata["raw_net_revenue"])) == Decimal(truth["shopify"]["net_revenue"])
    assert metadata["orders_differing"] == 0
    ga4 = evaluations["marts/fct_orders:ga4_purchases_match_web_orders"]
    assert ga4.passed and ga4.metadata["ga4_purchases"].value > 0
    assert evaluations["marts/customer_360:identity_over_merge"].metadata["identifiers_cut"].value == (
        report.identifiers_cut
    )


def test_materialisations_carry_row_counts_load_ids_and_a_preview(room: Room) -> None:
    orders = room.latest_materialization(ORDERS).metadata
    (raw_rows,) = room.sql("select count(*) from raw_shopify.orders")[0]
    assert orders["dagster/row_count"].value == raw_rows
    assert orders["new_rows"].value == raw_rows  # the first load: every row is new
    loads = {row[0] for row in room.sql("select load_id from raw_shopify._dlt_loads")}
    assert orders["load_ids"].value in loads
    customer_360 = room.latest_materialization(dg.AssetKey(["marts", "customer_360"])).metadata
    assert customer_360["dagster/row_count"].value == room.first.people
    preview = customer_360["preview"].value
    assert len(preview.records) == 5
    assert preview.schema.columns[0].name == "customer_key"
    assert "Execution Duration" in customer_360


def test_a_planted_duplicate_key_blocks_everything_downstream_and_alerts(
    room: Room, webhook: Webhook
) -> None:
    (order_id,) = room.sql("select min(id) from raw_shopify.orders")[0]
    room.sql("insert into raw_shopify.orders select * from raw_shopify.orders where id = ?", [order_id])
    try:
        report = run_nightly(room.instance)
    finally:
        with duckdb.connect(str(room.warehouse)) as connection:
            for statement in (
                "create temp table one as select * from raw_shopify.orders where id = ? limit 1",
                "delete from raw_shopify.orders where id = ?",
                "insert into raw_shopify.orders select * from one where id = ?",
            ):
                connection.execute(statement, [order_id])
    assert not report.success
    assert "raw_shopify/orders:primary_key_unique" in report.failed_checks
    duplicate = room.evaluations(report.run_id)["raw_shopify/orders:primary_key_unique"]
    assert duplicate.metadata["duplicate_keys"].value == 1
    assert str(order_id) in duplicate.metadata["sample (key, rows)"].value
    # the sources loaded, but no dbt model was built on the bad table
    assert "raw_shopify/orders" in report.assets_materialized
    assert not {key for key in report.assets_materialized if not key.startswith("raw_")}
    # nor published: BI tools keep reading the last good night's snapshot
    assert not report.bi_published
    assert "NOT published by this run" in report.render()
    with duckdb.connect(str(report.bi_snapshot), read_only=True) as connection:
        published_by = connection.execute("select distinct run_id from bi.snapshot").fetchall()
    assert published_by == [(room.first.run_id,)]

    # the check-failure alert and the run-failure alert post to the webhook
    tick = dg.build_sensor_context(instance=room.instance)
    check_failure_alert(tick)
    _assert_slack_message(webhook.received, "ERROR `raw_shopify/orders` check `primary_key_unique`")
    webhook.received.clear()
    # the next tick (the SQLite run storage `make ui` uses, with the cursor) has nothing new to say
    skipped = check_failure_alert(dg.build_sensor_context(instance=room.instance, cursor=tick.cursor))
    assert skipped.skip_message == "no run finished since the last tick"
    assert webhook.received == []
    run = room.instance.get_run_by_id(report.run_id)
    failure = room.instance.all_logs(report.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0]
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_instance=room.instance,
        dagster_run=run,
        dagster_event=failure.dagster_event,
    ).for_run_failure()
    run_failure_alert(context)
    _assert_slack_message(webhook.received, "run of nightly failed", report.run_id)


def test_reconciliation_fails_when_a_raw_order_is_altered(room: Room) -> None:
    (order_id,) = room.sql("select min(order_id) from marts.fct_orders where not is_cancelled")[0]
    room.sql(
        "update raw_shopify.orders set total_price = (total_price::decimal(18, 2) + 10)::varchar "
        "where id = ?",
        [order_id],
    )
    checks = defs.resolve_job_def("quality_checks")
    try:
        result = checks.execute_in_process(instance=room.instance, raise_on_error=False)
    finally:
        room.sql(
            "update raw_shopify.orders set total_price = (total_price::decimal(18, 2) - 10)::varchar "
            "where id = ?",
            [order_id],
        )
    evaluations = {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}
    reconciliation = evaluations["reconciles_with_shopify"]
    assert not reconciliation.passed
    metadata = {name: value.value for name, value in reconciliation.metadata.items()}
    assert metadata["orders_differing"] == 1
    assert round(metadata["raw_net_revenue"] - metadata["mart_net_revenue"], 2) == 10.0
    assert str(order_id) in metadata["sample (order id, raw, mart)"]
    # restored, it passes again
    result = checks.execute_in_process(instance=room.instance, raise_on_error=False)
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()}["reconciles_with_shopify"]


def test_ga4_days_not_exported_by_the_deadline_fail_partition_freshness(room: Room, webhook: Webhook) -> None:
    # the world ends on 2026-05-31: yesterday's export day (by the real clock) is missing
    freshness = dg.Definitions(
        assets=[next(assets for assets in raw_assets if GA4_EVENTS in assets.keys)],
        asset_checks=ga4_partition_freshness,
        jobs=[
            dg.define_asset_job("ga4_freshness", selection=dg.AssetSelection.checks(*ga4_partition_freshness))
        ],
        resources={"dlt": DagsterDltResource()},
    ).resolve_job_def("ga4_freshness")
    result = freshness.execute_in_process(instance=room.instance, raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.asset_key == GA4_EVENTS and not evaluation.passed
    check_failure_alert(dg.build_sensor_context(instance=room.instance))
    _assert_slack_message(webhook.received, "`raw_ga4/events` check `freshness_check`")


def test_an_api_source_older_than_26_hours_fails_its_freshness_policy(room: Room, webhook: Webhook) -> None:
    node = defs.resolve_asset_graph().get(ORDERS)
    loading = LoadingContextForTest(room.instance)
    evaluate = TimeWindowFreshnessPolicyEvaluator().evaluate_freshness
    assert asyncio.run(evaluate(context=loading, node=node)) == FreshnessState.PASS
    with freeze_time(datetime.now(UTC) + timedelta(hours=27)):
        assert asyncio.run(evaluate(context=loading, node=node)) == FreshnessState.FAIL
        # what the freshness daemon records, the freshness alert reports
        asyncio.run(
            FreshnessDaemon()._evaluate_asset(context=LoadingContextForTest(room.instance), node=node)
        )
    build_freshness_alert([ORDERS])(dg.build_sensor_context(instance=room.instance))
    _assert_slack_message(webhook.received, "`raw_shopify/orders` is stale")


def test_a_cli_backfill_of_three_ga4_days_reloads_only_those_days(room: Room) -> None:
    days = ["2026-05-20", "2026-05-21", "2026-05-22"]
    # GA4 rows carry no load id (dlt imports the Parquet files as they are): mark the days instead, by
    # deleting one event of a backfilled day and of a day outside the range
    outside = "20260525"
    for day in ("20260521", outside):
        room.sql(
            "delete from raw_ga4.events where event_date = $1 and event_timestamp = "
            "(select min(event_timestamp) from raw_ga4.events where event_date = $1)",
            [day],
        )
    counts_before = dict(room.sql("select event_date, count(*) from raw_ga4.events group by all"))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(room.home),
        "SHOP360_DATA_DIR": str(room.directory),
    }
    shop360 = Path(sys.executable).with_name("shop360")
    result = subprocess.run(
        [str(shop360), "backfill-ga4", "--from", days[0], "--to", days[-1]],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ga4_backfill run succeeded" in result.stdout
    run = room.instance.get_runs(dg.RunsFilter(job_name="ga4_backfill"), limit=1)[0]
    partitions = sorted(
        entry.dagster_event.partition
        for entry in room.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if entry.dagster_event.asset_key == GA4_EVENTS
    )
    assert partitions == days
    counts_after = dict(room.sql("select event_date, count(*) from raw_ga4.events group by all"))
    # every day outside the range is as it was, the deleted event included
    for day, count in counts_before.items():
        if day not in {stem.replace("-", "") for stem in days}:
            assert counts_after[day] == count, day
    assert counts_after[outside] == counts_before[outside]
    # the reloaded days hold exactly the events of their export files
    for day in days:
        stem = day.replace("-", "")
        expected = gzip_lines(room.directory / "sandbox" / "ga4" / f"events_{stem}.json.gz")
        assert room.sql("select count(*) from raw_ga4.events where event_date = ?", [stem])[0][0] == expected
    # the models below GA4 were rebuilt in the same run
    funnel_runs = room.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["marts", "fct_funnel_daily"])), limit=1
    ).records
    assert funnel_runs[0].run_id == run.run_id


def test_a_shrunken_orders_table_fails_the_row_count_check_and_blocks_the_marts(room: Room) -> None:
    rows = room.latest_materialization(ORDERS).metadata["dagster/row_count"].value
    room.sql("delete from raw_shopify.orders where id % 2 = 0")
    (left,) = room.sql("select count(*) from raw_shopify.orders")[0]
    assert left < rows * 0.9
    report = run_nightly(room.instance)
    assert not report.success
    assert report.failed_checks == ["raw_shopify/orders:row_count_change"]
    evaluation = room.evaluations(report.run_id)["raw_shopify/orders:row_count_change"]
    assert evaluation.metadata["rows"].value == left
    assert evaluation.metadata["previous_rows"].value == rows
    assert evaluation.metadata["change"].value == round((left - rows) / rows, 4)
    assert not {key for key in report.assets_materialized if key.startswith("marts/")}
