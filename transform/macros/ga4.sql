{#- A GA4 event parameter by key, from the repeated event_params JSON. -#}
{% macro ga4_param(key, value_field='string_value', value_type='varchar') -%}
    cast(
        list_filter(
            cast(event_params as struct(
                key varchar,
                value struct(string_value varchar, int_value bigint, float_value double, double_value double)
            )[]),
            lambda param: param.key = '{{ key }}'
        )[1].value.{{ value_field }}
        as {{ value_type }}
    )
{%- endmacro %}

{#- The marketing channel of a visit, from its source and medium (GA4's default grouping, simplified). -#}
{% macro channel_from_source_medium(source, medium) -%}
    case
        when {{ medium }} = 'email' then 'email'
        when {{ medium }} in ('cpc', 'ppc', 'paid') then 'paid_search'
        when {{ medium }} = 'organic' then 'organic_search'
        when {{ medium }} in ('social', 'social-network', 'sm') then 'social'
        when {{ source }} = '(direct)' or {{ medium }} in ('(none)', '(not set)') or {{ medium }} is null then 'direct'
        else 'referral'
    end
{%- endmacro %}
