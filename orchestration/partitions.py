"""Which GA4 export days (partitions of ``raw_ga4/events``) a nightly run loads."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from ingestion import paths, settings
from ingestion import warehouse as warehouse_db
from ingestion.ga4 import export_days
from ingestion.pipelines import ga4_bucket_url
from orchestration.nightly import table_exists
from orchestration.raw_assets import GA4_PARTITIONS
from orchestration.retention import retention_cutoff

# Rows an older shop360 loaded keep the export's nested fields in JSON columns, this one among them
# (before decision 31); the days they are of do not count as loaded, so a night loads them again.
OLD_LAYOUT_COLUMN = "event_params"

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


class NoExportFiles(RuntimeError):
    """The GA4 bucket holds no export file of a day Dagster knows."""


def loaded_days() -> set[str]:
    """The export days the warehouse holds events of in the current raw layout (ISO dates).

    Read from the warehouse, not from Dagster's record of materialised partitions: a warehouse
    rebuilt from scratch, or a run recorded in another instance, must not make days look loaded.
    A day loaded by an older shop360 (``OLD_LAYOUT_COLUMN`` set) is not loaded: the first night after
    an upgrade loads every day with a file again, and each day's rows are replaced.
    """
    warehouse = paths.warehouse_path()
    if not warehouse.exists():
        return set()
    with warehouse_db.connect(warehouse, read_only=True) as connection:
        if not table_exists(connection, "raw_ga4", "events"):
            return set()
        old_layout = connection.execute(
            "select count(*) from duckdb_columns() "
            "where schema_name = 'raw_ga4' and table_name = 'events' and column_name = ?",
            [OLD_LAYOUT_COLUMN],
        ).fetchone()[0]
        in_current_layout = f"{OLD_LAYOUT_COLUMN} is null" if old_layout else "true"
        rows = connection.execute(
            f"select distinct event_date from raw_ga4.events where {in_current_layout}"
        ).fetchall()
    return {f"{day[:4]}-{day[4:6]}-{day[6:]}" for (day,) in rows}


def nightly_days() -> tuple[str, str]:
    """First and last export day for tonight: every day with a file on the first night (within the
    retention period); after that,
    from the newest ``GA4_RELOAD_DAYS`` days loaded before (GA4 still rewrites them) to the newest
    file's day. A day missing further back is re-loaded with ``shop360 backfill-ga4``."""
    known = set(GA4_PARTITIONS.get_partition_keys())
    kept_from = retention_cutoff().isoformat()  # older days would only be deleted again
    with_files = [
        day.isoformat()
        for day in export_days(ga4_bucket_url())
        if day.isoformat() in known and day.isoformat() >= kept_from
    ]
    if not with_files:
        first_kept = max(kept_from, f"{GA4_PARTITIONS.start:%Y-%m-%d}")
        raise NoExportFiles(
            f"no GA4 export file under {ga4_bucket_url()} for a day from {first_kept} "
            "to yesterday (SHOP360_GA4_START_DATE sets the first day, SHOP360_GA4_RETENTION_MONTHS how "
            "far back days are kept)"
        )
    newest = with_files[-1]
    loaded = loaded_days()  # once: a distinct over every raw event (a call per day took 165 s at size M)
    newest_loaded = max((day for day in with_files if day in loaded), default=None)
    if newest_loaded is None:
        return with_files[0], newest
    # GA4 may still rewrite the newest days it exported before tonight
    reload_from = date.fromisoformat(newest_loaded) - timedelta(days=settings.GA4_RELOAD_DAYS - 1)
    first = max(reload_from.isoformat(), with_files[0])
    return first, newest


def range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags asking for the partitions ``first`` to ``last`` in one run."""
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


def nightly_run_tags(instance: dg.DagsterInstance | None = None) -> dict[str, str]:
    """The nightly run's tags (the schedule passes its instance; the days come from the warehouse)."""
    return range_tags(*nightly_days())
