"""Raw-layer assets: one Dagster asset per dlt resource, keyed ``<raw schema>/<table>``.

The keys equal the keys dagster-dbt gives the dbt sources that read these tables, so the asset
graph runs from the APIs to the marts in one piece.
"""

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from ingestion.pipelines import SOURCES, configure_sources, describe_source, make_pipeline, make_source
from orchestration.constants import OWNER, WAREHOUSE_WRITER_POOL


class RawTableTranslator(DagsterDltTranslator):
    """Asset key ``raw_<source>/<table>``, grouped by raw schema, with no made-up upstream assets."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        dataset = data.pipeline.dataset_name
        return spec.replace_attributes(
            key=dg.AssetKey([dataset, data.resource.name]),
            deps=[],
            group_name=dataset,
            owners=[OWNER],
            kinds={"dlt", "duckdb"},
        )


def build_raw_assets(source_name: str) -> dg.AssetsDefinition:
    """The dlt assets of one source system."""

    @dlt_assets(
        dlt_source=describe_source(source_name),
        dlt_pipeline=make_pipeline(source_name),
        name=f"{source_name}_raw",
        dagster_dlt_translator=RawTableTranslator(),
        pool=WAREHOUSE_WRITER_POOL,
    )
    def load(context: dg.AssetExecutionContext, dlt: DagsterDltResource):
        mode = configure_sources()
        context.log.info(f"loading {source_name} ({mode})")
        # Built now, not at import: settings and the data directory are read when the run starts.
        yield from dlt.run(
            context=context, dlt_source=make_source(source_name), dlt_pipeline=make_pipeline(source_name)
        )

    return load


raw_assets = [build_raw_assets(name) for name in SOURCES]
