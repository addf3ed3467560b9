{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        on_schema_change='fail',
        pre_hook="{{ forget_ga4_days_gone_from_raw() }}",
    )
}}
-- One row per GA4 event, exact duplicates removed, the parameters marts use unnested.
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
        user_pseudo_id || ':' || {{ ga4_param('ga_session_id', 'int_value', 'bigint') }} as session_key,
        {{ ga4_param('ga_session_number', 'int_value', 'bigint') }} as session_number,
        {{ ga4_param('page_location') }} as page_location,
        device ->> 'category' as device_category,
        geo ->> 'country' as country,
        geo ->> 'city' as city,
        traffic_source ->> 'source' as traffic_source,
        traffic_source ->> 'medium' as traffic_medium,
        traffic_source ->> 'name' as traffic_campaign,
        ecommerce ->> 'transaction_id' as transaction_id,
        cast(ecommerce ->> 'purchase_revenue' as decimal(18, 2)) as purchase_revenue,
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
