"""The front door: the one Dagster ``Definitions`` that `dagster dev`, the CLI and the tests load."""

from __future__ import annotations

import dagster as dg
from dagster_dlt import DagsterDltResource

from orchestration.checks import quarantined_records_check
from orchestration.constants import NIGHTLY_CRON, NIGHTLY_TIMEZONE
from orchestration.dbt_assets import dbt_models, dbt_resource
from orchestration.raw_assets import raw_assets

nightly_job = dg.define_asset_job(
    name="nightly",
    selection=dg.AssetSelection.all(),
    description="Load every source, build and test every dbt model.",
)

nightly_schedule = dg.ScheduleDefinition(
    name="nightly_schedule",
    job=nightly_job,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone=NIGHTLY_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(
    assets=[*raw_assets, dbt_models],
    asset_checks=[quarantined_records_check],
    jobs=[nightly_job],
    schedules=[nightly_schedule],
    resources={"dlt": DagsterDltResource(), "dbt": dbt_resource},
)
