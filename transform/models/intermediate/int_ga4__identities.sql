{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        on_schema_change='fail',
        pre_hook="{{ forget_ga4_days_gone_from_staging() }}",
    )
}}
-- The identifiers GA4 events carry, one row per export day and distinct combination of cookie,
-- login (user_id), purchase (transaction_id) and checkout page: identity resolution reads these
-- instead of every event. Incremental by export day, as stg_ga4__events (decision 29).
with

events as (
    select * from {{ ref('stg_ga4__events') }}
    where nullif(trim(user_pseudo_id), '') is not null
    {%- if is_incremental() %}
        and event_date in (
            select event_date
            from {{ ref('stg_ga4__events') }}
            where _dlt_load_id > {{ last_load_built(this) }}
        )
    {%- endif %}
),

final as (
    select
        event_date,
        user_pseudo_id,
        user_id,
        transaction_id,
        -- the browser went through this checkout's pages (Shopify's checkout token in the path)
        case
            when contains(page_location, '/checkouts/')
                then nullif(regexp_extract(page_location, '/checkouts/(?:cn/)?([0-9A-Za-z_-]{16,})', 1), '')
        end as checkout_token,
        min(event_at) as first_event_at,
        -- a day's events share their load id
        max(_dlt_load_id) as _dlt_load_id
    from events
    group by event_date, user_pseudo_id, user_id, transaction_id, checkout_token
)

select * from final
