"""The front door: the one Dagster ``Definitions`` that `dagster dev`, the CLI and the tests load."""

from __future__ import annotations

import dagster as dg
from dagster_dlt import DagsterDltResource

from orchestration import settings as control
from orchestration.alerts import build_freshness_alert, check_failure_alert, run_failure_alert
from orchestration.bi_assets import bi_snapshot
from orchestration.checks import ga4_partition_freshness, python_checks
from orchestration.constants import ERASURE_REBUILD_JOB
from orchestration.dbt_assets import dbt_models, dbt_resource
from orchestration.partitions import nightly_run_tags
from orchestration.raw_assets import GA4_EVENTS, raw_assets

# Freshness checks are about the clock, not a run's data: the freshness sensor runs them, the jobs don't.
_data_assets_and_checks = dg.AssetSelection.all() - dg.AssetSelection.checks(*ga4_partition_freshness)

nightly_job = dg.define_asset_job(
    name="nightly",
    selection=_data_assets_and_checks,
    description="Load every source (GA4: the export days not loaded yet and the last three), build and "
    "test every dbt model, run the quality checks, publish the BI snapshot.",
)

ga4_backfill_job = dg.define_asset_job(
    name="ga4_backfill",
    selection=dg.AssetSelection.assets(GA4_EVENTS).downstream()
    - dg.AssetSelection.checks(*ga4_partition_freshness),
    description="Re-load a range of GA4 export days (its partitions), rebuild the models below them and "
    "publish the BI snapshot again.",
)

erasure_rebuild_job = dg.define_asset_job(
    name=ERASURE_REBUILD_JOB,
    selection=dg.AssetSelection.assets(dbt_models).downstream()
    - dg.AssetSelection.checks(*ga4_partition_freshness),
    description="After `shop360 forget` removed a person from the raw tables: rebuild and test every dbt "
    "model and what is below it, so no model or aggregate counts them. Loads nothing; tagged with the "
    "erasure request id only.",
)

quality_checks_job = dg.define_asset_job(
    name="quality_checks",
    selection=dg.AssetSelection.checks(*python_checks),
    description="Re-run shop360's quality checks on the warehouse as it is, loading and building nothing.",
)


@dg.schedule(
    name="nightly_schedule",
    job=nightly_job,
    cron_schedule=control.NIGHTLY_CRON,
    execution_timezone=control.TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(tags=nightly_run_tags(context.instance))


source_keys = [key for assets in raw_assets for key in assets.keys]

defs = dg.Definitions(
    assets=[*raw_assets, dbt_models, bi_snapshot],
    asset_checks=[*python_checks, *ga4_partition_freshness],
    jobs=[nightly_job, ga4_backfill_job, erasure_rebuild_job, quality_checks_job],
    schedules=[nightly_schedule],
    sensors=[
        dg.build_sensor_for_freshness_checks(
            freshness_checks=ga4_partition_freshness, default_status=dg.DefaultSensorStatus.RUNNING
        ),
        run_failure_alert,
        check_failure_alert,
        build_freshness_alert(source_keys),
    ],
    resources={"dlt": DagsterDltResource(), "dbt": dbt_resource},
)
