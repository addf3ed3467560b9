"""dbt models as Dagster assets (dbt tests as asset checks), built with one ``dbt build``."""

import json
import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from ingestion import paths, pipelines
from orchestration.constants import DBT_EXECUTABLE, DBT_PROJECT_DIR, OWNER, WAREHOUSE_WRITER_POOL

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# `dagster dev` builds the manifest itself; tests, CI and `make demo` run `shop360 dbt-parse` first.
dbt_project.prepare_if_dev()


class ModelTranslator(DagsterDbtTranslator):
    """Models keyed ``<schema>/<model>`` and grouped by layer; sources keep ``<raw schema>/<table>``."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_resource_props["schema"]

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return [OWNER]


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=ModelTranslator(),
    pool=WAREHOUSE_WRITER_POOL,
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    # profiles.yml reads the warehouse location from here; make it absolute for dbt's working dir.
    os.environ["SHOP360_DATA_DIR"] = str(paths.data_dir())
    args = ["build"]
    # a sandbox world ends on its own day: the marts' "now" (dbt macro as_of) is that day
    if as_of := pipelines.sandbox_as_of():
        args += ["--vars", json.dumps({"as_of": as_of})]
    yield from dbt.cli(args, context=context).stream()


dbt_resource = DbtCliResource(project_dir=dbt_project, dbt_executable=str(DBT_EXECUTABLE))
