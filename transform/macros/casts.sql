{#- Casting helpers for API strings: a value that does not parse becomes null, and the model's
    quarantine logic reports the record instead of failing the whole build. DuckDB's try_cast does
    that (dbt.safe_cast compiles to a plain cast on dbt-duckdb); porting means changing these macros. -#}

{#- An ISO 8601 timestamp with UTC offset, as a UTC timestamp without time zone. -#}
{% macro to_utc_timestamp(column) -%}
    timezone('UTC', try_cast({{ column }} as timestamptz))
{%- endmacro %}

{#- A money string such as "199.00" as a decimal with two places. -#}
{% macro to_money(column) -%}
    try_cast({{ column }} as decimal(18, 2))
{%- endmacro %}

{#- An email address normalised the way people type it: trimmed and lower-cased. -#}
{% macro normalise_email(column) -%}
    nullif(lower(trim({{ column }})), '')
{%- endmacro %}

{#- True when a normalised email looks like an address (one @, a dot in the domain). -#}
{% macro is_valid_email(column) -%}
    regexp_full_match({{ column }}, '[^@\s]+@[^@\s]+\.[^@\s]+')
{%- endmacro %}
