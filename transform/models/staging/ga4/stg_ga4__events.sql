{{ config(materialized='table') }}
-- A table, not a view: every model reading GA4 events (sessions, identity) would otherwise repeat
-- the distinct over every event loaded (decision 26).
-- One row per GA4 event, exact duplicates removed, the parameters marts use unnested.
with

events as (
    {{ source_columns('raw_ga4', 'events') }}
),

deduplicated as (
    -- GA4 sends some events twice; an exact copy is the same event
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
        cast(ecommerce ->> 'purchase_revenue' as decimal(18, 2)) as purchase_revenue
    from deduplicated
),

final as (
    select
        *,
        {{ channel_from_source_medium('traffic_source', 'traffic_medium') }} as channel
    from renamed
)

select * from final
