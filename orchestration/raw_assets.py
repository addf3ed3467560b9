"""Raw-layer assets: one Dagster asset per dlt resource, keyed ``<raw schema>/<table>``.

The keys equal the keys dagster-dbt gives the dbt sources that read these tables, so the asset
graph runs from the APIs to the marts in one piece. GA4's events are partitioned by export day, so
a range of days can be backfilled and one bad day re-run; the API sources are not partitioned (their
loads are incremental by ``updated_at``).
"""

import hashlib
import inspect
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from ingestion import paths, pipelines, settings
from ingestion import warehouse as warehouse_db
from ingestion.pipelines import (
    SOURCES,
    configure_sources,
    current_suppression,
    describe_source,
    drop_retired_resources,
    make_pipeline,
    make_source,
)
from ingestion.secrets import redact_error
from ingestion.suppression import Suppression
from orchestration import retention
from orchestration import settings as control
from orchestration.constants import OWNER, WAREHOUSE_WRITER_POOL

GA4_EVENTS = dg.AssetKey(["raw_ga4", "events"])
GA4_PARTITIONS = dg.DailyPartitionsDefinition(start_date=control.GA4_START_DATE, timezone=control.TIMEZONE)

SOURCE_TITLES = {"shopify": "Shopify Admin API", "klaviyo": "Klaviyo API", "ga4": "GA4 BigQuery export files"}


def source_code_version(source_name: str) -> str:
    """A hash of the code that decides what a source loads: its module and the shared settings."""
    modules = (inspect.getmodule(pipelines._FACTORIES[source_name]), settings)
    digest = hashlib.sha256(b"".join(inspect.getsource(module).encode() for module in modules))
    return digest.hexdigest()[:16]


def freshness_policy(source_name: str) -> dg.FreshnessPolicy:
    """How fresh a source's tables must be; the freshness daemon evaluates it and the UI shows it."""
    if source_name == "ga4":
        # yesterday's export must be in by the deadline; it may have landed any time since the day before
        return dg.FreshnessPolicy.cron(
            deadline_cron=control.GA4_DEADLINE_CRON,
            lower_bound_delta=timedelta(hours=24),
            timezone=control.TIMEZONE,
        )
    return dg.FreshnessPolicy.time_window(fail_window=control.API_SOURCE_MAX_AGE)


class RawTableTranslator(DagsterDltTranslator):
    """Asset key ``raw_<source>/<table>``, grouped by raw schema, with no made-up upstream assets."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        dataset = data.pipeline.dataset_name
        source_name = dataset.removeprefix("raw_")
        resource = data.resource
        disposition = resource.write_disposition
        if isinstance(disposition, dict):
            disposition = f"{disposition['disposition']} ({disposition.get('strategy', 'default')})"
        loaded_how = f"Loaded by dlt from the {SOURCE_TITLES[source_name]}; write disposition {disposition}."
        return spec.replace_attributes(
            key=dg.AssetKey([dataset, resource.name]),
            deps=[],
            group_name=dataset,
            owners=[OWNER],
            kinds={"dlt", "duckdb"},
            description="\n\n".join(part for part in ((spec.description or "").strip(), loaded_how) if part),
            code_version=source_code_version(source_name),
            freshness_policy=freshness_policy(source_name),
        )


def table_rows(dataset: str, tables: list[str]) -> dict[str, int]:
    """Rows now in each of ``dataset``'s ``tables`` that exists (read-only; closed before dlt writes)."""
    warehouse = paths.warehouse_path()
    if not warehouse.exists():
        return {}
    with warehouse_db.connect(warehouse, read_only=True) as connection:
        existing = {
            name
            for (name,) in connection.execute(
                "select table_name from duckdb_tables() where schema_name = ?", [dataset]
            ).fetchall()
        }
        return {
            table: connection.execute(f'select count(*) from "{dataset}"."{table}"').fetchone()[0]
            for table in tables
            if table in existing
        }


def with_row_counts(
    result: dg.MaterializeResult,
    rows_before: dict[str, int],
    rows_after: dict[str, int],
    load_ids: list[str],
    extra: dict[str, Any],
    suppression: Suppression | None = None,
) -> dg.MaterializeResult:
    """dlt's metadata plus the load ids, the table's row count, how many rows this run added, how
    many records of erased people it kept out (the suppression list), and ``extra``."""
    table = result.asset_key.path[-1]
    metadata = {**(result.metadata or {}), **extra}
    if suppression is not None:
        metadata["rows_suppressed"] = dg.MetadataValue.int(suppression.dropped.get(table, 0))
    # the value of _dlt_load_id on the rows of this run (and the key of dlt's load packages)
    metadata["load_ids"] = ", ".join(load_ids) or "none"
    rows = rows_after.get(table, 0)
    metadata["dagster/row_count"] = dg.MetadataValue.int(rows)
    new_rows = rows - rows_before.get(table, 0)
    metadata["new_rows"] = dg.MetadataValue.int(new_rows)
    loaded = metadata.get("rows_loaded")
    if loaded is not None and new_rows >= 0:
        # a merge load replaces the rows it already had: the rest of what it loaded was updates
        metadata["updated_rows"] = dg.MetadataValue.int(max(loaded.value - new_rows, 0))
    return dg.MaterializeResult(asset_key=result.asset_key, metadata=metadata)


def partition_days(context: dg.AssetExecutionContext) -> tuple[date, date] | None:
    """The first and last export day of a partitioned run (one day, or a backfilled range)."""
    if context.assets_def.partitions_def is None:
        return None
    key_range = context.partition_key_range
    return date.fromisoformat(key_range.start), date.fromisoformat(key_range.end)


def expire_ga4_days(context: dg.AssetExecutionContext) -> dict[str, Any]:
    """Delete GA4 events older than the retention period (what the run just loaded included);
    the metadata saying how many and from which day."""
    cutoff = retention.retention_cutoff()
    with warehouse_db.connect(paths.warehouse_path()) as connection:
        expired = retention.expire_ga4_events(connection, cutoff)
    context.log.info(f"GA4 retention: {expired} events of export days before {cutoff} deleted")
    return {"retained_from": cutoff.isoformat(), "rows_expired": dg.MetadataValue.int(expired)}


def build_raw_assets(source_name: str) -> dg.AssetsDefinition:
    """The dlt assets of one source system."""
    partitioned = source_name == "ga4"

    @dlt_assets(
        dlt_source=describe_source(source_name),
        dlt_pipeline=make_pipeline(source_name),
        name=f"{source_name}_raw",
        dagster_dlt_translator=RawTableTranslator(),
        partitions_def=GA4_PARTITIONS if partitioned else None,
        # a backfill of many days is one dlt load, not one run per day
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        pool=WAREHOUSE_WRITER_POOL,
    )
    def load(context: dg.AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[dg.MaterializeResult]:
        mode = configure_sources()
        options = {}
        if days := partition_days(context):
            options["days"] = days
            context.log.info(f"loading {source_name} ({mode}), export days {days[0]} to {days[1]}")
        else:
            context.log.info(f"loading {source_name} ({mode})")
        tables = [key.path[-1] for key in context.selected_asset_keys]
        dataset = settings.DATASETS[source_name]
        rows_before = table_rows(dataset, tables)
        # the erased people's keyed hashes, read before dlt opens the warehouse for writing
        suppression = current_suppression()
        # Built now, not at import: settings and the data directory are read when the run starts.
        pipeline = make_pipeline(source_name)
        if retired := drop_retired_resources(pipeline, source_name):
            context.log.info(f"dropped the tables of resources no longer loaded: {', '.join(retired)}")
        source = make_source(source_name, suppression=suppression, **options)
        results = dlt.run(context=context, dlt_source=source, dlt_pipeline=pipeline)
        rows_after = None
        try:
            for result in results:
                if rows_after is None:  # the load has finished when the first result arrives
                    expired = expire_ga4_days(context) if source_name == "ga4" else {}
                    rows_after = table_rows(dataset, tables)
                    load_ids = list(pipeline.last_trace.last_load_info.loads_ids)
                    if suppression:
                        context.log.info(
                            f"suppression list ({suppression.entries} keyed hashes): {suppression.summary()}"
                        )
                yield with_row_counts(result, rows_before, rows_after, load_ids, expired, suppression)
        except Exception as error:
            # Dagster stores the error's message in its run storage: no secret may be in it
            redact_error(error)
            raise

    return load


raw_assets = [build_raw_assets(name) for name in SOURCES]
