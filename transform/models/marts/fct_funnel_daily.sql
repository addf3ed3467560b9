-- Checkout funnel per day × device × channel: sessions reaching each step (closed funnel, with
-- the open count beside it), conversion from the previous step, the share that dropped off there,
-- the step where most dropped off, and the median and 90th percentile time from session start to
-- each step.
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
        count({{ step }}_at) as {{ step }}_sessions,
        count(first_{{ step }}_at) as {{ step }}_sessions_open,
        quantile_cont(epoch({{ step }}_at) - epoch(started_at), 0.5) as {{ step }}_seconds_median,
        quantile_cont(epoch({{ step }}_at) - epoch(started_at), 0.9) as {{ step }}_seconds_p90{{ "," if not loop.last }}
        {%- endfor %}
    from sessions
    group by session_date, device_category, channel
),

rates as (
    select
        *,
        {%- for step in steps[1:] %}
        {%- set previous = steps[loop.index0] %}
        round({{ step }}_sessions / nullif({{ previous }}_sessions, 0), 4) as {{ step }}_conversion,
        round(1 - {{ step }}_sessions / nullif({{ previous }}_sessions, 0), 4) as {{ step }}_drop_off,
        {%- endfor %}
        round(purchase_sessions / nullif(sessions, 0), 4) as session_conversion
    from daily
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
        {%- for step in steps %}
        {{ step }}_sessions_open,
        {%- endfor %}
        {%- for step in steps[1:] %}
        {{ step }}_conversion,
        {{ step }}_drop_off,
        {%- endfor %}
        session_conversion,
        -- the step with the highest drop-off rate, where a shop owner should look first; ties go
        -- to the earlier step, and a row without any drop-off has none
        case greatest({% for step in steps[1:] %}{{ step }}_drop_off{{ ", " if not loop.last }}{% endfor %})
            when 0 then null
            {%- for step in steps[1:] %}
            when {{ step }}_drop_off then '{{ step }}'
            {%- endfor %}
        end as largest_drop_off_step,
        {%- for step in steps %}
        round({{ step }}_seconds_median, 1) as {{ step }}_seconds_median,
        round({{ step }}_seconds_p90, 1) as {{ step }}_seconds_p90{{ "," if not loop.last }}
        {%- endfor %}
    from rates
)

select * from final
