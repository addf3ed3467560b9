"""dbt models as Dagster assets (dbt tests as asset checks), built with one ``dbt build``."""

import datetime as dt
import importlib.metadata
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from dagster_dbt.dbt_project import using_dagster_dev
from packaging.version import Version

from ingestion import paths, pipelines
from ingestion import warehouse as warehouse_db
from orchestration.constants import (
    DBT_EXECUTABLE,
    DBT_PROJECT_DIR,
    ERASURE_REBUILD_JOB,
    OWNER,
    WAREHOUSE_WRITER_POOL,
)
from orchestration.dbt_functions import HASH_KEY_ENV
from orchestration.dbt_manifest import PARTIAL_PARSE_FILE, TARGET_DIR, parse_project, swap_in

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# Tests, CI and `make demo` run `shop360 dbt-parse` first. `dagster dev` parses the project again
# whenever it loads the code, so edited models show up; as `shop360 dbt-parse` does, not with
# dagster-dbt's `prepare_if_dev`, whose dbt writes the manifest in place while others may read it.
if using_dagster_dev():
    parse_project()

# "now" for the marts (dbt macro as_of) when the sources are a simulated world
AS_OF_ENV = "SHOP360_AS_OF"

# Each dbt run writes its run_results.json, compiled SQL and dbt.log (about 15 MB) to a folder of its
# own under the data directory: those of the last two weeks of nights are kept, older ones deleted
RUN_TARGETS_DIR = "dbt_runs"
KEPT_RUN_TARGETS = 14

# A mart's asset page shows its first rows after each run (how many: macros/build_metadata.sql),
# each text cut to this length
PREVIEW_TEXT_LENGTH = 40


class ModelTranslator(DagsterDbtTranslator):
    """Models keyed ``<schema>/<model>``; grouped by layer, staging also by source system; sources
    keep ``<raw schema>/<table>`` (the dlt assets' keys). Models refresh when their upstreams change."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        schema = dbt_resource_props["schema"]
        if schema == "staging":
            # fqn: project, layer folder, source folder, model
            return f"staging_{dbt_resource_props['fqn'][2]}"
        return schema

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return [OWNER]

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition:
        # a backfilled GA4 day or a re-loaded source refreshes the models below it, not a second clock
        return dg.AutomationCondition.eager()

    def get_asset_spec(self, manifest, unique_id, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["nodes"].get(unique_id, {})
        if node.get("language") == "python":
            spec = spec.merge_attributes(kinds={"python"})
        return spec


def _cell(value: Any) -> str | int | float | bool | None:
    """A warehouse value as a table-preview cell."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Decimal):
        return float(value)
    text = value.isoformat() if isinstance(value, dt.date | dt.datetime) else str(value)
    return text if len(text) <= PREVIEW_TEXT_LENGTH else text[: PREVIEW_TEXT_LENGTH - 1] + "…"


def table_metadata(folder: Path, schema: str, table: str) -> dict[str, Any]:
    """Row count, and for a mart the first rows, of a table dbt has just built, from the files its
    post-hook wrote to ``folder`` (macros/build_metadata.sql); nothing for a view or ephemeral."""
    rows_file = folder / f"{schema}.{table}.rows.parquet"
    if not rows_file.exists():
        return {}
    with duckdb.connect() as connection:
        (rows,) = connection.execute("select row_count from read_parquet(?)", [str(rows_file)]).fetchone()
        metadata: dict[str, Any] = {"dagster/row_count": dg.MetadataValue.int(rows)}
        preview_file = folder / f"{schema}.{table}.preview.parquet"
        if preview_file.exists():
            cursor = connection.execute("select * from read_parquet(?)", [str(preview_file)])
            columns = [column[0] for column in cursor.description]
            metadata["preview"] = dg.MetadataValue.table(
                records=[
                    dg.TableRecord({column: _cell(value) for column, value in zip(columns, row, strict=True)})
                    for row in cursor.fetchall()
                ],
                schema=dg.TableSchema(columns=[dg.TableColumn(column) for column in columns]),
            )
    return metadata


def with_table_metadata(context: dg.AssetExecutionContext, events: Iterable[Any]) -> Iterator[Any]:
    """The dbt events as dbt reports them, each model's materialisation with its row count (and a
    mart's preview).

    Dagster stores each event while dbt builds on (about 500 events a night). The figures come from
    files dbt writes, as no other process may open the warehouse while dbt writes to it.
    """
    folder = paths.dbt_metadata_dir()
    for event in events:
        if isinstance(event, dg.Output):
            key = context.asset_key_for_output(event.output_name)
            event = event.with_metadata({**event.metadata, **table_metadata(folder, *key.path)})
        yield event


def empty_metadata_dir() -> None:
    """An empty build metadata folder for this build: a file left from an earlier build is not read
    for a model this one did not build."""
    folder = paths.dbt_metadata_dir()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def keep_partial_parse(run_target: Path) -> None:
    """Leave this run's parse state where dagster-dbt takes it for the next run.

    dagster-dbt gives each run its own target folder, seeded with the project target's
    ``partial_parse.msgpack``. That file comes from ``shop360 dbt-parse``, whose profile differs from
    a run's whenever the data directory does, and dbt then parses the whole project again (5 s).
    """
    state = run_target / PARTIAL_PARSE_FILE
    if state.exists():
        # a run starting now reads the old state or the new one
        swap_in(state, TARGET_DIR / PARTIAL_PARSE_FILE)


def new_run_target(context: dg.AssetExecutionContext) -> Path:
    """This dbt run's target folder: ``<data dir>/dbt_runs/<op>-<run id>-<id>`` (dagster-dbt's naming;
    its default place is the project's target folder, shared by every data directory)."""
    return (
        paths.data_dir() / RUN_TARGETS_DIR / f"{context.op_execution_context.op.name}-"
        f"{context.run.run_id[:7]}-{uuid.uuid4().hex[:7]}"
    )


def prune_run_targets(run_target: Path, keep: int = KEPT_RUN_TARGETS) -> list[Path]:
    """Delete all but the newest ``keep`` run target folders beside ``run_target`` (named as it is,
    ``<op>-<run id>-<id>``); the folders deleted."""
    op_name = run_target.name.split("-")[0]
    folders = sorted(
        (folder for folder in run_target.parent.glob(f"{op_name}-*-*") if folder.is_dir()),
        key=lambda folder: folder.stat().st_mtime,
        reverse=True,
    )
    for folder in folders[keep:]:
        # another run may be deleting the same folder
        shutil.rmtree(folder, ignore_errors=True)
    return folders[keep:]


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=ModelTranslator(),
    pool=WAREHOUSE_WRITER_POOL,
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    # the warehouse location and DuckDB's memory limit, threads and temp directory (profiles.yml)
    os.environ.update(warehouse_db.dbt_environment())
    # the secret of dbt's keyed_hash() function (orchestration/dbt_functions.py)
    os.environ[HASH_KEY_ENV] = pipelines.hash_key()
    # a sandbox world ends on its own day: the marts' "now" (dbt macro as_of; empty: the current
    # time). An environment variable, not a dbt var: a changed var makes dbt parse the whole project.
    os.environ[AS_OF_ENV] = pipelines.sandbox_as_of() or ""
    # dbt's unit tests have fixed inputs: `make test` runs them once (as dbt advises), not every night
    args = ["build", "--exclude-resource-type", "unit_test"]
    # after an erasure, the incremental models are rebuilt from the raw tables the person is gone from
    # (the identity tables that must never be rebuilt say full_refresh=false and keep their rows)
    if context.run.job_name == ERASURE_REBUILD_JOB:
        args.append("--full-refresh")
    empty_metadata_dir()
    invocation = dbt.cli(args, context=context, raise_on_error=False, target_path=new_run_target(context))
    yield from with_table_metadata(context, invocation.stream())
    keep_partial_parse(invocation.target_path)
    prune_run_targets(invocation.target_path)
    if error := invocation.get_error():
        raise error


class DbtCli(DbtCliResource):
    """dagster-dbt's dbt CLI resource without two things it does before every dbt command and
    shop360 never uses (3–4 s a run on a 2-core machine):

    - it runs ``dbt --version`` in a process of its own to learn the version of the dbt it runs
      (which also asks the package index for dbt's newest version: a wait on a server without
      internet); shop360 runs the dbt installed beside it (``DBT_EXECUTABLE``), whose version its
      package metadata says;
    - it loads the project, the profile and dbt's macros into this process for a dbt adapter that
      only ``fetch_column_metadata()`` and ``fetch_row_counts()`` use; shop360's dbt writes each
      table's row count itself (``with_table_metadata``).

    Both are dagster-dbt's private methods: tests/orchestration/test_definitions.py fails if an
    upgrade renames them, rather than letting the saving go unnoticed.
    """

    @cached_property
    def _cli_version(self) -> Version:
        return Version(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


dbt_resource = DbtCli(project_dir=dbt_project, dbt_executable=str(DBT_EXECUTABLE))
