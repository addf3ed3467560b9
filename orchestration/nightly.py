"""Run the nightly job in-process and summarise it: rows per schema, checks, time, warehouse."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

from ingestion import paths

SCHEMAS = ("raw_shopify", "raw_klaviyo", "raw_ga4", "staging", "intermediate", "marts", "audit")


@dataclass
class NightlyReport:
    """What a person wants to know after a run."""

    success: bool
    seconds: float
    warehouse: Path
    rows_per_schema: dict[str, int] = field(default_factory=dict)
    assets_materialized: set[str] = field(default_factory=set)
    assets_selected: set[str] = field(default_factory=set)
    checks_passed: int = 0
    failed_checks: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"nightly run {'succeeded' if self.success else 'FAILED'} in {self.seconds:.1f} s"]
        lines.append(f"  assets: {len(self.assets_materialized)} of {len(self.assets_selected)} materialised")
        lines += [f"  {schema:<13} {rows:>12,} rows" for schema, rows in self.rows_per_schema.items()]
        lines.append(f"  checks: {self.checks_passed} passed, {len(self.failed_checks)} failed")
        lines += [f"    failed: {name}" for name in self.failed_checks]
        lines.append(f"  warehouse: {self.warehouse}")
        return "\n".join(lines)


def rows_per_schema(warehouse: Path) -> dict[str, int]:
    """Rows of every table and view per warehouse schema (dlt's bookkeeping tables left out).

    Opened read-only, so it never takes the writer's lock.
    """
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        tables = connection.execute(
            "select schema_name, table_name from duckdb_tables() where not internal "
            "union all select schema_name, view_name from duckdb_views() where not internal"
        ).fetchall()
        counts = dict.fromkeys(SCHEMAS, 0)
        for schema, table in tables:
            if schema in counts and not table.startswith("_dlt_"):
                counts[schema] += connection.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[
                    0
                ]
    return counts


def run_nightly(instance: dg.DagsterInstance | None = None, log_level: str = "WARNING") -> NightlyReport:
    """Execute the ``nightly`` job in this process and report on it.

    Without an ``instance``, the run is recorded in ``$DAGSTER_HOME``'s instance, so `make ui`
    shows it. ``log_level`` is the console's: the full event log stays in the instance.
    """
    from orchestration.definitions import defs

    started = time.perf_counter()
    job = defs.resolve_job_def("nightly")
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    with contextlib.ExitStack() as stack:
        run_instance = instance or stack.enter_context(dg.DagsterInstance.get())
        result = job.execute_in_process(instance=run_instance, run_config=run_config, raise_on_error=False)
    evaluations = result.get_asset_check_evaluations()
    report = NightlyReport(
        success=result.success,
        seconds=time.perf_counter() - started,
        warehouse=paths.warehouse_path(),
        assets_materialized={
            event.asset_key.to_user_string() for event in result.get_asset_materialization_events()
        },
        assets_selected={key.to_user_string() for key in job.asset_layer.selected_asset_keys},
        checks_passed=sum(evaluation.passed for evaluation in evaluations),
        failed_checks=sorted(
            f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            for evaluation in evaluations
            if not evaluation.passed
        ),
    )
    if report.warehouse.exists():
        report.rows_per_schema = rows_per_schema(report.warehouse)
    return report
