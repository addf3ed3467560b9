"""The published BI snapshot as a Dagster asset, downstream of every mart (``orchestration.publish``)."""

from typing import Any

import dagster as dg

from ingestion import paths, pipelines
from orchestration.constants import OWNER, WAREHOUSE_WRITER_POOL
from orchestration.dbt_assets import dbt_models, dbt_project
from orchestration.publish import DESCRIPTION_TABLE, Snapshot, publish_snapshot

BI_SNAPSHOT = dg.AssetKey(["bi", "snapshot"])
# Every dbt model of the marts schema: the snapshot waits for all of them (and their blocking
# checks), so a failed or blocked mart leaves the previous snapshot in place. No automation
# condition: Dagster's eager condition ignores failed checks, so it could publish marts a run had
# refused; only a run that built and checked the marts (nightly, ga4_backfill) publishes them.
MART_KEYS = sorted((key for key in dbt_models.keys if key.path[0] == "marts"), key=lambda key: key.path)


def snapshot_metadata(snapshot: Snapshot) -> dict[str, Any]:
    """What the asset page shows about a published snapshot."""
    rows = "\n".join(
        f"| marts.{name} | {count:,} | {', '.join(snapshot.hashed_columns[name]) or '–'} |"
        for name, count in snapshot.rows.items()
    )
    return {
        "path": dg.MetadataValue.path(str(snapshot.path)),
        "parquet": dg.MetadataValue.path(str(snapshot.parquet_dir)),
        "snapshot_version": snapshot.version,
        "file_size_bytes": dg.MetadataValue.int(snapshot.size_bytes),
        "parquet_size_bytes": dg.MetadataValue.int(snapshot.parquet_bytes),
        "publish_seconds": dg.MetadataValue.float(round(snapshot.seconds, 3)),
        "marts": dg.MetadataValue.int(len(snapshot.rows)),
        "dagster/row_count": dg.MetadataValue.int(sum(snapshot.rows.values())),
        "rows_per_mart": dg.MetadataValue.json(snapshot.rows),
        "tables": dg.MetadataValue.md("| table | rows | keyed hashes |\n|---|---|---|\n" + rows),
    }


@dg.asset(
    key=BI_SNAPSHOT,
    deps=MART_KEYS,
    group_name="bi",
    kinds={"duckdb", "python"},
    owners=[OWNER],
    pool=WAREHOUSE_WRITER_POOL,
    description=(
        "Every mart, published for BI tools: a new DuckDB file renamed atomically to "
        "data/bi/shop360.duckdb (same schema and table names as the warehouse, plus "
        f"{DESCRIPTION_TABLE}) and one Parquet file per mart under data/bi/parquet/ (a symlink swapped "
        "to a new folder). No direct identifiers: raw source ids are keyed hashes (policy per column "
        "in the marts' YAML, meta bi_snapshot)."
    ),
)
def bi_snapshot(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    snapshot = publish_snapshot(
        warehouse=paths.warehouse_path(),
        bi_dir=paths.bi_dir(),
        manifest=dbt_project.manifest_path,
        hash_key=pipelines.hash_key(),
        run_id=context.run.run_id,
    )
    context.log.info(
        f"published {len(snapshot.rows)} marts ({sum(snapshot.rows.values()):,} rows) to {snapshot.path} "
        f"and {snapshot.parquet_dir} in {snapshot.seconds:.2f} s"
    )
    return dg.MaterializeResult(metadata=snapshot_metadata(snapshot))
