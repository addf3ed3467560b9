{#- "Now" for every recency, days-since and lifecycle column, as a UTC timestamp: the dbt var
    `as_of`, else the env var SHOP360_AS_OF (an ISO date-time in UTC), else the current time.
    The sandbox sets SHOP360_AS_OF to the end of its simulated world, so its marts read as they
    would have on that day. -#}
{% macro as_of() -%}
    {%- set value = var('as_of', env_var('SHOP360_AS_OF', '')) -%}
    {%- if value -%}
        '{{ value }}'::timestamp
    {%- else -%}
        (now() at time zone 'UTC')
    {%- endif -%}
{%- endmacro %}

{#- A UTC timestamp column as the shop's local time (var shop_timezone), for weekday and hour
    of day as the shop's customers live them. -#}
{% macro to_shop_time(column) -%}
    timezone('{{ var("shop_timezone") }}', timezone('UTC', {{ column }}))
{%- endmacro %}
