-- Checkout funnel per day × device × channel: sessions reaching each step (closed funnel),
-- conversion from the previous step and the share that dropped off there.
{%- set steps = var('funnel_steps') %}
with

sessions as (
    select * from {{ ref('int_ga4__sessions') }}
),

daily as (
    select
        session_date,
        device_category,
        channel,
        count(*) as sessions,
        {%- for step in steps %}
        count({{ step }}_at) as {{ step }}_sessions{{ "," if not loop.last }}
        {%- endfor %}
    from sessions
    group by session_date, device_category, channel
),

final as (
    select
        session_date,
        device_category,
        channel,
        sessions,
        {%- for step in steps %}
        {{ step }}_sessions,
        {%- endfor %}
        {%- for step in steps[1:] %}
        {%- set previous = steps[loop.index0] %}
        round({{ step }}_sessions / nullif({{ previous }}_sessions, 0), 4) as {{ step }}_conversion,
        round(1 - {{ step }}_sessions / nullif({{ previous }}_sessions, 0), 4) as {{ step }}_drop_off,
        {%- endfor %}
        round(purchase_sessions / nullif(sessions, 0), 4) as session_conversion
    from daily
)

select * from final
