{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='session_key',
        on_schema_change='fail',
        post_hook="{{ forget_sessions_without_events() }}",
    )
}}
-- One row per GA4 session: where it came from, where it landed, what it looked at and when it
-- first reached each funnel step.
-- The funnel is closed: a step's time (<step>_at) is the first time it happened after the previous
-- step was reached, so a session that adds to cart without viewing an item has not reached
-- add_to_cart. The open times (first_<step>_at) ignore the order, as the common packaged funnels do.
-- Incremental: a run rebuilds, from all their events, the sessions with an event on an export day
-- staging rebuilt since this model's last build, and those whose days were expired; sessions left
-- without any event are deleted (post-hook).
{%- set steps = var('funnel_steps') %}
with
{%- if is_incremental() %}

-- the export days staging (re)built since this model's last build
rebuilt_days as (
    select distinct event_date
    from {{ ref('stg_ga4__events') }}
    where _dlt_load_id > {{ last_load_built(this) }}
),

sessions_to_rebuild as (
    select session_key
    from {{ ref('stg_ga4__events') }}
    where event_date in (select event_date from rebuilt_days)
    union
    -- a session that had events on a rebuilt day, or on a day retention expired
    select session_key
    from {{ this }} as built
    where built.session_date < (select min(event_date) from {{ ref('stg_ga4__events') }})
        or exists (
            select 1
            from rebuilt_days
            where rebuilt_days.event_date between built.session_date and built.last_event_date
        )
),
{%- endif %}

-- A full build does not materialize: DuckDB would otherwise copy every event, all columns, into a
-- temporary result before the reads below (43 s of a 54 s build at size M, most of it spilled to
-- disk). An incremental one does: the few sessions' events are copied once instead of each read
-- filtering all events again (0.46-0.56 s against 1.12-1.51 s for the 14,414 sessions of the M
-- incremental night's 4 days).
events as {{ 'materialized' if is_incremental() else 'not materialized' }} (
    select * from {{ ref('stg_ga4__events') }}
    where session_key is not null
    {%- if is_incremental() %}
        and session_key in (select session_key from sessions_to_rebuild)
    {%- endif %}
),

session_starts as (
    select
        session_key,
        user_pseudo_id,
        min(event_date) as session_date,
        max(event_date) as last_event_date,
        min(event_at) as started_at,
        max(event_at) as ended_at,
        max(user_id) as user_id,
        count(*) filter (where event_name = 'page_view') as page_views,
        -- every view and add, in any order (the funnel columns below keep the closed order)
        count(*) filter (where event_name = 'view_item') as product_views,
        count(*) filter (where event_name = 'add_to_cart') as add_to_carts,
        max(_dlt_load_id) as _dlt_load_id,
        {%- for step in steps %}
        min(event_at) filter (where event_name = '{{ step }}') as first_{{ step }}_at{{ "," if not loop.last }}
        {%- endfor %}
    from events
    group by session_key, user_pseudo_id
),

-- the first event's device, channel, traffic source (where the session came from), country and
-- page: a window is five times faster here than an arg_min over their struct in the aggregate above
first_events as (
    select
        session_key,
        device_category,
        channel,
        traffic_source,
        traffic_medium,
        traffic_campaign,
        country,
        page_location
    from events
    qualify row_number() over (partition by session_key order by event_at) = 1
),

step_events as (
    select
        session_key,
        event_name,
        event_at,
        transaction_id
    from events
    where event_name in ('{{ steps | join("', '") }}')
),
{% for step in steps %}
reached_{{ step }} as (
    select
        step_events.session_key,
        min(step_events.event_at) as reached_at
        {%- if step == 'purchase' %},
        arg_min(step_events.transaction_id, step_events.event_at) as transaction_id
        {%- endif %}
    from step_events
    {%- if not loop.first %}
    inner join reached_{{ loop.previtem }}
        on step_events.session_key = reached_{{ loop.previtem }}.session_key
        and step_events.event_at >= reached_{{ loop.previtem }}.reached_at
    {%- endif %}
    where step_events.event_name = '{{ step }}'
    group by step_events.session_key
),
{% endfor %}
final as (
    select
        session_starts.session_key,
        session_starts.user_pseudo_id,
        session_starts.user_id,
        session_starts.session_date,
        session_starts.started_at,
        session_starts.ended_at,
        first_events.device_category,
        first_events.channel,
        first_events.traffic_source,
        first_events.traffic_medium,
        first_events.traffic_campaign,
        first_events.country,
        -- the page path only: query strings and fragments can carry campaign ids or an email
        regexp_extract(
            first_events.page_location, '^[a-z]+://[^/?#]*([^?#]*)', 1
        ) as landing_page,
        session_starts.page_views,
        session_starts.product_views,
        session_starts.add_to_carts,
        {%- for step in steps %}
        reached_{{ step }}.reached_at as {{ step }}_at,
        {%- endfor %}
        {%- for step in steps %}
        session_starts.first_{{ step }}_at,
        {%- endfor %}
        reached_purchase.transaction_id,
        session_starts.last_event_date,
        session_starts._dlt_load_id
    from session_starts
    inner join first_events on session_starts.session_key = first_events.session_key
    {%- for step in steps %}
    left join reached_{{ step }} on session_starts.session_key = reached_{{ step }}.session_key
    {%- endfor %}
)

select * from final
