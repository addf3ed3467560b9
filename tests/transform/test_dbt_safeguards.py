"""dbt's own safeguards beside the data tests: unit tests, and the not-null constraints of contracts.

The unit tests (``unit_tests:`` in the models' YAML) run here, once, and not in the nightly build:
their inputs are fixed rows, so a night would only repeat them (dbt advises running them in
development and CI). dbt still reads the column types of each tested model's parents from the
warehouse, so they run on the session's warehouse after its nightly run.

A column of a contracted table that may never be null says so as a contract constraint, which DuckDB
enforces while dbt fills the table: a null fails that model's build, and no data test has to scan the
column again afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from orchestration.dbt_assets import RUN_TARGETS_DIR
from orchestration.dbt_manifest import MANIFEST_FILE, TARGET_DIR
from orchestration.nightly import NightlyReport
from tests.conftest import run_dbt


def manifest() -> dict:
    return json.loads((TARGET_DIR / MANIFEST_FILE).read_text())


def run_results(target: Path) -> list[dict]:
    return json.loads((target / "run_results.json").read_text())["results"]


def test_every_dbt_unit_test_passes(nightly: NightlyReport, data_dir: Path) -> None:
    assert nightly.success, nightly.render()
    done = run_dbt(data_dir, "test", "--select", "test_type:unit")
    assert done.returncode == 0, done.stdout[-4000:]
    results = {result["unique_id"]: result["status"] for result in run_results(data_dir / "dbt_target")}
    assert sorted(results) == sorted(manifest()["unit_tests"])
    assert len(results) >= 30 and set(results.values()) == {"pass"}


def test_the_nightly_build_runs_no_unit_test(nightly: NightlyReport) -> None:
    # each run's dbt writes to a folder of its own, named after the run, in the data directory
    (target,) = nightly.warehouse.parent.glob(f"{RUN_TARGETS_DIR}/*-{nightly.run_id[:7]}-*")
    kinds = {result["unique_id"].split(".")[0] for result in run_results(target)}
    assert kinds == {"model", "test"}


def test_duckdb_enforces_every_not_null_constraint(warehouse: duckdb.DuckDBPyConnection) -> None:
    declared = {
        (node["schema"], node["alias"], column["name"])
        for node in manifest()["nodes"].values()
        if node["resource_type"] == "model"
        for column in node["columns"].values()
        if any(constraint["type"] == "not_null" for constraint in column.get("constraints", []))
    }
    assert len(declared) >= 140
    enforced = set(
        warehouse.execute(
            "select schema_name, table_name, unnest(constraint_column_names) from duckdb_constraints() "
            "where constraint_type = 'NOT NULL'"
        ).fetchall()
    )
    assert declared <= enforced, sorted(declared - enforced)
