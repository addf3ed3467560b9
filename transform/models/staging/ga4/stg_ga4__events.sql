{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        on_schema_change='fail',
        pre_hook="{{ forget_ga4_days_gone_from_raw() }}",
    )
}}
-- One row per GA4 event, exact duplicates removed, renamed for the marts.
-- Incremental by export day (macros/incremental.sql): a run rebuilds the days dlt (re)loaded since
-- the last build and replaces each such day's rows whole, as the raw load does; days retention
-- deleted from raw are deleted first (pre-hook). `dbt build --full-refresh` rebuilds every day.
with

events as (
    select * from ({{ source_columns('raw_ga4', 'events', load_id=true) }}) as raw_events
    {%- if is_incremental() and raw_ga4_events_exist() %}
    where event_date in (
        select event_date
        from {{ source('raw_ga4', 'events') }}
        where _dlt_load_id > {{ last_load_built(this) }}
    )
    {%- endif %}
),

deduplicated as (
    -- GA4 sends some events twice; an exact copy is the same event (a day is loaded whole, so
    -- copies share their load id; a distinct is 20% faster than grouping on the other columns)
    select distinct * from events
),

renamed as (
    select
        strptime(event_date, '%Y%m%d')::date as event_date,
        make_timestamp(event_timestamp) as event_at,
        event_name,
        user_pseudo_id,
        user_id,
        user_pseudo_id || ':' || event_params__ga_session_id as session_key,
        event_params__ga_session_number as session_number,
        event_params__page_location as page_location,
        device__category as device_category,
        geo__country as country,
        geo__city as city,
        traffic_source__source as traffic_source,
        traffic_source__medium as traffic_medium,
        traffic_source__name as traffic_campaign,
        ecommerce__transaction_id as transaction_id,
        cast(ecommerce__purchase_revenue as decimal(18, 2)) as purchase_revenue,
        _dlt_load_id
    from deduplicated
),

final as (
    select
        *,
        {{ channel_from_source_medium('traffic_source', 'traffic_medium') }} as channel
    from renamed
)

select * from final
