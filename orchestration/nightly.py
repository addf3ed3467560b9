"""Run the nightly job in-process and summarise it: rows per schema, checks, time, warehouse, BI file."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

from ingestion import paths
from ingestion import warehouse as warehouse_db
from orchestration.publish import PARQUET_LINK, SNAPSHOT_FILE

SCHEMAS = ("raw_shopify", "raw_klaviyo", "raw_ga4", "staging", "intermediate", "marts", "audit")
BI_SNAPSHOT_ASSET = "bi/snapshot"
# Characters of a failed step's error shown in the summary
MAX_ERROR_LENGTH = 300


@dataclass
class NightlyReport:
    """What a person wants to know after a run."""

    success: bool
    seconds: float
    warehouse: Path
    job_name: str = "nightly"
    run_id: str = ""
    rows_per_schema: dict[str, int] = field(default_factory=dict)
    rows_loaded: dict[str, int] = field(default_factory=dict)
    assets_materialized: set[str] = field(default_factory=set)
    assets_selected: set[str] = field(default_factory=set)
    checks_passed: int = 0
    failed_checks: list[str] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    quarantined: int = 0
    people: int = 0
    identifiers_cut: int = 0
    key_changes: dict[str, int] = field(default_factory=dict)
    bi_snapshot: Path | None = None

    @property
    def bi_published(self) -> bool:
        """Whether this run published a new BI snapshot."""
        return BI_SNAPSHOT_ASSET in self.assets_materialized

    def render_bi_snapshot(self) -> str:
        """Where BI tools read, and whether this run replaced what they read."""
        if self.bi_snapshot is None:
            return "  BI snapshot: none yet (published after a run whose marts all built and passed)"
        parquet = self.bi_snapshot.with_name(PARQUET_LINK)
        if self.bi_published:
            return f"  BI snapshot: {self.bi_snapshot} (published by this run; Parquet: {parquet}/)"
        return (
            f"  BI snapshot: {self.bi_snapshot} (NOT published by this run: BI tools keep reading "
            "the previous one)"
        )

    def render(self) -> str:
        outcome = "succeeded" if self.success else "FAILED"
        lines = [f"{self.job_name} run {outcome} in {self.seconds:.1f} s (run id {self.run_id})"]
        lines.append(f"  assets: {len(self.assets_materialized)} of {len(self.assets_selected)} materialised")
        lines.append(
            "  rows loaded this run: "
            + (", ".join(f"{table} {rows:,}" for table, rows in sorted(self.rows_loaded.items())) or "none")
        )
        lines.append("  rows in the warehouse:")
        lines += [f"    {schema:<13} {rows:>12,}" for schema, rows in self.rows_per_schema.items()]
        lines.append(
            f"  checks: {self.checks_passed} passed, {len(self.failed_checks)} failed, "
            f"{len(self.warnings)} warnings"
        )
        lines += [f"    failed: {name}" for name in self.failed_checks]
        lines += [f"  failed step: {step}" for step in self.failed_steps]
        lines += [f"    warning: {name}" for name in self.warnings]
        lines.append(f"  quarantined records: {self.quarantined} (see audit.quarantined_records)")
        changes = ", ".join(f"{count} {kind}" for kind, count in sorted(self.key_changes.items())) or "none"
        lines.append(
            f"  people: {self.people:,} in marts.customer_360; customer_key changes this run: {changes} "
            "(see intermediate.int_identity__key_changes)"
        )
        lines.append(
            f"  identifiers cut by the over-merge guard: {self.identifiers_cut} "
            "(see intermediate.int_identity__cut_identifiers)"
        )
        lines.append(f"  warehouse: {self.warehouse}")
        lines.append(self.render_bi_snapshot())
        return "\n".join(lines)


def rows_per_schema(warehouse: Path) -> dict[str, int]:
    """Rows of every table and view per warehouse schema (dlt's bookkeeping tables left out).

    Opened read-only, so it never takes the writer's lock.
    """
    with warehouse_db.connect(warehouse, read_only=True) as connection:
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


def table_exists(connection: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` is a table of the warehouse (views and models not built yet are not)."""
    return connection.execute(
        "select count(*) > 0 from duckdb_tables() where schema_name = ? and table_name = ?", [schema, table]
    ).fetchone()[0]


def _count(connection: duckdb.DuckDBPyConnection, schema: str, table: str, where: str = "true") -> int:
    """Rows of ``schema.table`` matching ``where``; 0 when the model has not been built yet."""
    if not table_exists(connection, schema, table):
        return 0
    return connection.execute(f'select count(*) from "{schema}"."{table}" where {where}').fetchone()[0]


def read_outcomes(report: NightlyReport) -> None:
    """Fill in what the run left in the warehouse: quarantine, people, key changes, cut identifiers."""
    with warehouse_db.connect(report.warehouse, read_only=True) as connection:
        report.quarantined = _count(connection, "audit", "quarantined_records")
        report.people = _count(connection, "marts", "customer_360")
        report.identifiers_cut = _count(connection, "intermediate", "int_identity__cut_identifiers")
        if _count(connection, "intermediate", "int_identity__key_changes"):
            report.key_changes = dict(
                connection.execute(
                    """
                    select change_type, count(*)
                    from intermediate.int_identity__key_changes
                    where changed_at = (select max(seen_at) from intermediate.int_identity__person_keys)
                    group by change_type
                    """
                ).fetchall()
            )


def _rows_loaded(materializations: list[dg.DagsterEvent]) -> dict[str, int]:
    """Rows each raw table received in this run, from the dlt assets' ``rows_loaded`` metadata."""
    loaded = {}
    for event in materializations:
        metadata = event.step_materialization_data.materialization.metadata
        if "rows_loaded" in metadata:
            loaded[event.asset_key.to_user_string()] = metadata["rows_loaded"].value
    return loaded


def _step_failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """``step: error`` of every step that failed (the error's first line, shortened)."""
    failures = []
    for event in result.all_events:
        if event.event_type != dg.DagsterEventType.STEP_FAILURE:
            continue
        error = event.step_failure_data.error
        while error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
            error = error.cause
        message = f"{error.cls_name}: {error.message.strip().splitlines()[0]}"
        failures.append(f"{event.step_key}: {message[:MAX_ERROR_LENGTH]}")
    return failures


def _check_names(evaluations: list[dg.AssetCheckEvaluation], severity: dg.AssetCheckSeverity) -> list[str]:
    """``asset:check`` of every failed check of ``severity``."""
    return sorted(
        f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        for evaluation in evaluations
        if not evaluation.passed and evaluation.severity == severity
    )


def run_nightly(instance: dg.DagsterInstance | None = None, log_level: str = "WARNING") -> NightlyReport:
    """Execute the ``nightly`` job in this process and report on it.

    Without an ``instance``, the run is recorded in ``$DAGSTER_HOME``'s instance, so `make ui`
    shows it. ``log_level`` is the console's: the full event log stays in the instance. GA4 loads
    the export days the schedule would ask for (``orchestration.partitions.nightly_days``).
    """
    from orchestration.partitions import nightly_run_tags

    return run_job("nightly", nightly_run_tags, instance, log_level)


def run_ga4_backfill(
    first: str, last: str, instance: dg.DagsterInstance | None = None, log_level: str = "WARNING"
) -> NightlyReport:
    """Re-load the GA4 export days ``first`` to ``last`` (ISO dates) in one run, then rebuild the
    models below them (job ``ga4_backfill``)."""
    from orchestration.partitions import range_tags

    return run_job("ga4_backfill", lambda _instance: range_tags(first, last), instance, log_level)


def run_job(job_name: str, tags_for, instance: dg.DagsterInstance | None, log_level: str) -> NightlyReport:
    """Execute job ``job_name`` in this process with the run tags ``tags_for(instance)`` and report."""
    from orchestration.definitions import defs

    started = time.perf_counter()
    job = defs.resolve_job_def(job_name)
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    with contextlib.ExitStack() as stack:
        run_instance = instance or stack.enter_context(dg.DagsterInstance.get())
        result = job.execute_in_process(
            instance=run_instance, run_config=run_config, tags=tags_for(run_instance), raise_on_error=False
        )
    evaluations = result.get_asset_check_evaluations()
    report = NightlyReport(
        success=result.success,
        seconds=time.perf_counter() - started,
        warehouse=paths.warehouse_path(),
        job_name=job_name,
        run_id=result.run_id,
        assets_materialized={
            event.asset_key.to_user_string() for event in result.get_asset_materialization_events()
        },
        assets_selected={key.to_user_string() for key in job.asset_layer.selected_asset_keys},
        rows_loaded=_rows_loaded(result.get_asset_materialization_events()),
        checks_passed=sum(evaluation.passed for evaluation in evaluations),
        failed_checks=_check_names(evaluations, dg.AssetCheckSeverity.ERROR),
        failed_steps=_step_failures(result),
        warnings=_check_names(evaluations, dg.AssetCheckSeverity.WARN),
    )
    if (snapshot := paths.bi_dir() / SNAPSHOT_FILE).exists():
        report.bi_snapshot = snapshot
    if report.warehouse.exists():
        report.rows_per_schema = rows_per_schema(report.warehouse)
        read_outcomes(report)
    return report
