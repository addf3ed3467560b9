"""The Dagster definitions load, the graph is one piece, and the nightly job covers every asset."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from ingestion.paths import PROJECT_ROOT
from orchestration.constants import DBT_EXECUTABLE
from orchestration.dbt_assets import KEPT_RUN_TARGETS, dbt_resource, prune_run_targets
from orchestration.dbt_manifest import MANIFEST_FILE, PARTIAL_PARSE_FILE, TARGET_DIR, parse_project
from orchestration.definitions import defs


def _asset_graph():
    return defs.resolve_asset_graph()


def test_dbt_sources_are_the_dlt_assets() -> None:
    """Every upstream of a dbt model is a materialisable asset: dlt keys equal dbt source keys."""
    graph = _asset_graph()
    materializable = {key for key in graph.get_all_asset_keys() if graph.get(key).is_materializable}
    for key in materializable:
        for parent in graph.get(key).parent_keys:
            assert parent in materializable, f"{key.to_user_string()} depends on unmaterialisable {parent}"
    raw = {key for key in materializable if key.path[0].startswith("raw_")}
    assert dg.AssetKey(["raw_shopify", "orders"]) in raw
    assert dg.AssetKey(["raw_klaviyo", "events"]) in raw
    assert dg.AssetKey(["raw_ga4", "events"]) in raw
    # the marts reach back to all three source systems
    upstream = graph.upstream_key_iterator(dg.AssetKey(["marts", "customer_360"]))
    assert {key.path[0] for key in upstream if key.path[0].startswith("raw_")} == {
        "raw_shopify",
        "raw_klaviyo",
        "raw_ga4",
    }


def test_nightly_job_selects_every_asset_and_runs_on_schedule() -> None:
    job = defs.resolve_job_def("nightly")
    graph = _asset_graph()
    selected = job.asset_layer.selected_asset_keys
    assert selected == {key for key in graph.get_all_asset_keys() if graph.get(key).is_materializable}
    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Europe/Oslo"


def test_dbt_tests_are_asset_checks() -> None:
    check_keys = _asset_graph().asset_check_keys
    names = {(key.asset_key.to_user_string(), key.name) for key in check_keys}
    assert ("marts/customer_360", "unique_customer_360_customer_key") in names
    assert ("marts/fct_orders", "accepted_values_fct_orders_sales_channel__online__in_store") in names
    # a contracted column's not-null rule is a constraint DuckDB enforces, not a check that scans again
    assert ("marts/fct_orders", "not_null_fct_orders_net_revenue") not in names


def test_dagster_definitions_validate_on_the_workspace(tmp_path: Path) -> None:
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(PROJECT_ROOT / "workspace.yaml")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={"DAGSTER_HOME": str(tmp_path), "PATH": str(dagster.parent), "HOME": str(tmp_path)},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_the_bi_snapshot_waits_for_every_mart_in_the_writers_pool() -> None:
    graph = _asset_graph()
    snapshot = graph.get(dg.AssetKey(["bi", "snapshot"]))
    marts = {key for key in graph.get_all_asset_keys() if key.path[0] == "marts"}
    assert dg.AssetKey(["marts", "audience_reactivation"]) in marts
    assert set(snapshot.parent_keys) == marts
    assert snapshot.group_name == "bi"
    assert snapshot.owners == ["team:data-engineering"]
    assert set(snapshot.kinds) == {"duckdb", "python"}
    assert defs.get_assets_def(snapshot.key).op.pool == "duckdb_writer"
    # the nightly job and a GA4 backfill both end by publishing it
    for job_name in ("nightly", "ga4_backfill"):
        assert snapshot.key in defs.resolve_job_def(job_name).asset_layer.selected_asset_keys


def test_erasure_rebuild_job_builds_every_model_and_loads_nothing() -> None:
    """`shop360 forget` rebuilds through this job: every dbt model and what is below it (the BI
    snapshot, republished), with the checks on them, but no raw asset (the person's records are
    already gone from raw)."""
    from orchestration.dbt_assets import dbt_models

    job = defs.resolve_job_def("erasure_rebuild")
    selected = job.asset_layer.selected_asset_keys
    assert set(dbt_models.keys) <= selected
    assert not any(key.path[0].startswith("raw_") for key in selected)
    # dbt's tests run inside dbt build; the Python checks on the marts are a step of their own
    assert {node.name for node in job.graph.node_defs} == {"dbt_models", "mart_checks", "bi__snapshot"}
    assert dg.AssetKey(["bi", "snapshot"]) in selected
    checks = {key.name for key in job.asset_layer.asset_graph.asset_check_keys}
    assert {"reconciles_with_shopify", "unique_customer_360_customer_key"} <= checks
    assert "primary_key_unique" not in checks


def test_no_dbt_model_owns_the_erasure_tables() -> None:
    """audit.erasure_log and audit.erasure_suppressions are Python's: a dbt model of the same name
    would replace them on the next build."""
    from orchestration.person import PYTHON_OWNED, dbt_relations

    every, _ = dbt_relations()
    assert not every & PYTHON_OWNED


def test_a_new_parse_swaps_the_manifest_in_whole() -> None:
    """Processes import the definitions (and read the manifest) while `dagster dev` or `make manifest`
    parses again: the new files replace the old ones in one step, never written in place."""
    kept = {name: TARGET_DIR / name for name in (MANIFEST_FILE, PARTIAL_PARSE_FILE)}
    with kept[MANIFEST_FILE].open() as reader:  # a process that opened the manifest before the parse
        before = {name: path.stat().st_ino for name, path in kept.items()}
        parse_project()
        old_manifest = json.load(reader)
    for name, path in kept.items():
        assert path.stat().st_ino != before[name], f"{name} was written in place"
    # the reader got the whole old file; the new one is whole too and names the same models
    new_manifest = json.loads(kept[MANIFEST_FILE].read_text())
    assert old_manifest["nodes"].keys() == new_manifest["nodes"].keys()
    assert "model.shop360.customer_360" in new_manifest["nodes"]
    assert not [path.name for path in TARGET_DIR.iterdir() if path.name.startswith(".")]


def test_only_the_last_two_weeks_of_dbt_run_folders_are_kept(tmp_path: Path) -> None:
    """Each dbt run leaves a target folder of its own: a year of nights must not fill the disk."""
    runs = []
    for night in range(KEPT_RUN_TARGETS + 3):
        folder = tmp_path / f"dbt_models-{night:07d}-{night:07x}"
        (folder / "compiled").mkdir(parents=True)
        (folder / "run_results.json").write_text("{}")
        os.utime(folder, (1_700_000_000 + night * 86_400,) * 2)
        runs.append(folder)
    others = [tmp_path / "compiled", tmp_path / "other_op-0000001-0000001", tmp_path / "manifest.json"]
    others[0].mkdir()
    others[1].mkdir()
    others[2].write_text("{}")

    deleted = prune_run_targets(runs[-1])

    assert deleted == runs[2::-1]
    assert sorted(tmp_path.iterdir()) == sorted(runs[3:] + others)


def test_the_dbt_resource_skips_only_the_version_process_and_the_unused_adapter() -> None:
    """dagster-dbt still asks for the dbt version and the adapter through the two private methods
    shop360's resource replaces (an upgrade renaming them would quietly bring back 3–4 s a run),
    and the version shop360 assumes is the one the dbt it runs reports."""
    before_each_command = inspect.getsource(DbtCliResource.cli)
    assert "self._cli_version" in before_each_command
    assert "self._initialize_dbt_core_adapter(" in before_each_command
    reported = subprocess.run(
        [str(DBT_EXECUTABLE), "--version"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert f"installed: {dbt_resource._cli_version}" in reported
    assert dbt_resource._initialize_dbt_core_adapter(["build"]) is None
