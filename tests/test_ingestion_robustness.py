"""Ingestion under faults, after the world moves on, and after a run killed half way.

Each scenario runs the real nightly job (in-process, or in a child process that is killed) against
the sandbox's fake APIs and checks the warehouse against the world: key sets per raw table and net
revenue to the cent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ingestion.pipelines import stop_sandbox
from ingestion.sandbox.world import advance_world
from orchestration.nightly import NightlyReport, run_nightly
from tests.conftest import gzip_lines, own_world, read_jsonl

FAULTS = "error_rate=0.1,slow_rate=0.05,slow_seconds=0.3,drop_connections=1,seed=5"
# world file -> raw table holding one row per record of it
TABLES = {
    "shopify/customers": "raw_shopify.customers",
    "shopify/orders": "raw_shopify.orders",
    "shopify/products": "raw_shopify.products",
    "shopify/checkouts": "raw_shopify.checkouts",
    "klaviyo/profiles": "raw_klaviyo.profiles",
    "klaviyo/events": "raw_klaviyo.events",
    "klaviyo/campaigns": "raw_klaviyo.campaigns",
}


@pytest.fixture(scope="module")
def scenario_dir(tmp_path_factory: pytest.TempPathFactory):
    """A data directory shared by the scenarios that build on each other (full, advance, kill)."""
    yield from own_world(tmp_path_factory.mktemp("robustness"))


@pytest.fixture
def fresh_dir(tmp_path: Path):
    """A data directory of one test's own, loaded from scratch."""
    yield from own_world(tmp_path)


def _run(faults: str = "") -> NightlyReport:
    """The nightly job in this process, against a sandbox started with ``faults``."""
    stop_sandbox()
    os.environ["SHOP360_SANDBOX_FAULTS"] = faults
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            return run_nightly(instance)
    finally:
        os.environ.pop("SHOP360_SANDBOX_FAULTS", None)
        stop_sandbox()


def _assert_warehouse_equals_world(directory: Path) -> None:
    world = directory / "sandbox" / "world"
    truth = json.loads((directory / "sandbox" / "truth" / "summary.json").read_text())
    with duckdb.connect(str(directory / "warehouse.duckdb"), read_only=True) as connection:
        for file, table in TABLES.items():
            expected = sorted(record["id"] for record in read_jsonl(world / f"{file}.jsonl"))
            loaded = [row[0] for row in connection.execute(f"select id from {table} order by id").fetchall()]
            assert loaded == expected, table
        revenue = connection.execute("select sum(net_revenue) from marts.fct_orders").fetchone()[0]
        people_revenue = connection.execute("select sum(net_revenue) from marts.customer_360").fetchone()[0]
        events = connection.execute("select count(*) from raw_ga4.events").fetchone()[0]
    assert revenue == Decimal(truth["shopify"]["net_revenue"])
    # every order that names a customer is some person's
    assert people_revenue == Decimal(truth["shopify"]["net_revenue_of_customers"])
    assert events == truth["ga4"]["events"]


def _changed_records(before: dict[str, list[str]], world: Path) -> dict[str, int]:
    """Per world file: records that are new or whose JSON changed since ``before``."""
    changed = {}
    for file in before:
        old = set(before[file])
        changed[file] = sum(line not in old for line in (world / f"{file}.jsonl").read_text().splitlines())
    return changed


def test_full_load_under_faults_equals_the_world(scenario_dir: Path) -> None:
    report = _run(FAULTS)
    assert report.success, report.render()
    assert report.failed_checks == []
    _assert_warehouse_equals_world(scenario_dir)


def test_after_one_day_only_changed_records_load(scenario_dir: Path) -> None:
    world = scenario_dir / "sandbox" / "world"
    before = {file: (world / f"{file}.jsonl").read_text().splitlines() for file in TABLES}
    advance_world(scenario_dir / "sandbox", 1)
    changed = _changed_records(before, world)
    assert changed["shopify/orders"] > 0 and changed["klaviyo/events"] > 0

    report = _run()
    assert report.success, report.render()
    for file in ("shopify/customers", "shopify/orders", "klaviyo/profiles", "klaviyo/events"):
        asset = "raw_" + file
        assert report.rows_loaded.get(asset, 0) == changed[file], asset
    # the new export day and the three days before it, which GA4 may still rewrite
    newest_files = sorted((scenario_dir / "sandbox" / "ga4").glob("events_*.json.gz"))[-4:]
    assert report.rows_loaded["raw_ga4/events"] == sum(gzip_lines(file) for file in newest_files)
    _assert_warehouse_equals_world(scenario_dir)


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from dlt.destinations.impl.duckdb import duck
    if sys.argv[1] == "load":
        # SIGKILL this process the moment the first table of a load package is written
        original = duck.DuckDbCopyJob.run
        def run_then_die(self):
            original(self)
            os.kill(os.getpid(), signal.SIGKILL)
        duck.DuckDbCopyJob.run = run_then_die
    from orchestration.cli import main
    sys.exit(main(["run"]))
    """
)


@pytest.mark.parametrize("phase", ["extract", "load"])
def test_killed_run_then_rerun_equals_the_world(scenario_dir: Path, phase: str) -> None:
    advance_world(scenario_dir / "sandbox", 1)
    env = {**os.environ, "DAGSTER_HOME": str(scenario_dir / f"dagster_{phase}")}
    if phase == "extract":
        # slow pages keep the child in extract long enough to be killed there
        env["SHOP360_SANDBOX_FAULTS"] = "slow_rate=1.0,slow_seconds=0.5,seed=1"
    child = subprocess.Popen([sys.executable, "-c", CHILD, phase], env=env, cwd=Path(__file__).parent.parent)
    if phase == "extract":
        time.sleep(8)
        child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=300) == -signal.SIGKILL
    report = _run()
    assert report.success, report.render()
    _assert_warehouse_equals_world(scenario_dir)


def test_records_without_id_are_quarantined_and_new_fields_evolve(fresh_dir: Path) -> None:
    import ingestion.pipelines as pipelines

    stop_sandbox()
    os.environ["SHOP360_SANDBOX_FAULTS"] = "missing_id_rate=0.03,drift_rate=0.1,seed=9"
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            report = run_nightly(instance)
        server = pipelines._sandbox_server
        missing = {table: server.missing_id_ids(table) for table in ("customers", "orders")}
    finally:
        os.environ.pop("SHOP360_SANDBOX_FAULTS", None)
        stop_sandbox()
    assert report.success, report.render()
    assert "audit/quarantined_records:no_quarantined_records" in report.warnings
    assert missing["orders"] and missing["customers"]
    world = fresh_dir / "sandbox" / "world"
    with duckdb.connect(str(fresh_dir / "warehouse.duckdb"), read_only=True) as connection:
        for table, ids in missing.items():
            quarantined = connection.execute(
                "select record_id, problem from audit.quarantined_records "
                "where source_system = 'shopify' and source_table = ? and problem like 'id % is missing%'",
                [table],
            ).fetchall()
            assert sorted(quarantined) == sorted(
                (f"gid://shopify/{table[:-1].capitalize()}/{id_}", "id None is missing or not an integer")
                for id_ in ids
            )
            # everything else loaded: raw ids and quarantined ids together are the world's ids
            loaded = {row[0] for row in connection.execute(f"select id from raw_shopify.{table}").fetchall()}
            expected = {record["id"] for record in read_jsonl(world / "shopify" / f"{table}.jsonl")}
            assert loaded | ids == expected
        drifted = connection.execute(
            "select count(*) from raw_shopify.orders where merchant_business_entity_id is not null"
        ).fetchone()[0]
    assert drifted > 0  # a field the connector never saw became a new column, nothing failed
