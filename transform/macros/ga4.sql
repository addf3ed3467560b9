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
