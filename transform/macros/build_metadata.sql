{#-
  Post-hook of every model (dbt_project.yml), run after the model's own hooks and its commit: a
  table's row count, and a mart's first rows, written as Parquet files to the folder named by
  SHOP360_DBT_METADATA_DIR (shop360 sets it for dbt, ingestion/warehouse.py dbt_environment();
  unset, as for dbt run by hand, nothing is written).
  Dagster attaches them to the model's materialisation as soon as dbt reports the model done,
  while dbt goes on: no other process may read the warehouse while dbt writes to it
  (orchestration/dbt_assets.py).
-#}
{% macro export_build_metadata() -%}
    {%- set folder = env_var('SHOP360_DBT_METADATA_DIR', '') | replace("'", "''") -%}
    {%- if execute and folder and config.get('materialized') in ('table', 'incremental') -%}
    copy (select count(*) as row_count from {{ this }})
        to '{{ folder }}/{{ this.schema }}.{{ this.identifier }}.rows.parquet' (format parquet);
    {%- if this.schema == 'marts' %}
    -- the mart's preview on its asset page
    copy (select * from {{ this }} limit 5)
        to '{{ folder }}/{{ this.schema }}.{{ this.identifier }}.preview.parquet' (format parquet);
    {%- endif -%}
    {%- endif -%}
{%- endmacro %}
