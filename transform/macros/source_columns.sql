{#-
  Selects the columns a raw table declares in the sources YAML, cast to the declared types.

  dlt creates a column only once it has seen a non-null value, and a nested table (e.g. refunds)
  only once one exists, so a young shop's raw schema lacks some of them. A declared column that is
  missing reads as a typed null, and a missing table as an empty result, so staging always compiles.

  `nested` names a nested table dlt writes beside the source table (e.g. orders__line_items); its
  columns are declared in the source table's meta.nested_tables.

  `load_id=true` also selects dlt's `_dlt_load_id` (which load wrote the row), for incremental models.
-#}
{% macro source_columns(source_name, table_name, nested=none, load_id=false) -%}
    {%- set root = source(source_name, table_name) -%}
    {%- set relation = root if nested is none else root.incorporate(path={"identifier": nested}) -%}
    {%- if not execute -%}
        {#- parsing: the graph and the warehouse are not available yet -#}
        select * from {{ relation }}
    {%- else -%}
        {%- set node = graph.sources.values() | selectattr('source_name', 'equalto', source_name)
            | selectattr('name', 'equalto', table_name) | first -%}
        {%- set declared = {} -%}
        {%- if nested is none -%}
            {%- for name, column in node.columns.items() -%}
                {%- do declared.update({name: column.data_type}) -%}
            {%- endfor -%}
        {%- else -%}
            {%- do declared.update(node.meta.nested_tables[nested]) -%}
        {%- endif -%}
        {%- if load_id -%}
            {%- do declared.update({'_dlt_load_id': 'varchar'}) -%}
        {%- endif -%}
        {%- set existing = [] -%}
        {%- set found = adapter.get_relation(relation.database, relation.schema, relation.identifier) -%}
        {%- if found is not none -%}
            {%- for column in adapter.get_columns_in_relation(found) -%}
                {%- do existing.append(column.name | lower) -%}
            {%- endfor -%}
        {%- endif %}
    select
        {%- for name, data_type in declared.items() %}
        {% if name | lower in existing -%}
        cast({{ adapter.quote(name) }} as {{ data_type }})
        {%- else -%}
        cast(null as {{ data_type }})
        {%- endif %} as {{ adapter.quote(name) }}{{ "," if not loop.last }}
        {%- endfor %}
    {% if found is not none -%}
    from {{ relation }}
    {%- else -%}
    where false
    {%- endif %}
    {%- endif %}
{%- endmacro %}
