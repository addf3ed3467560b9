-- One row per person with a GA4 cookie or a Shopify checkout: how they use the online shop
-- (sessions, views, carts, abandoned checkouts, devices, recency) and where their first visit came
-- from. A person's web behaviour is every GA4 session of every cookie identity resolution gave them.
-- Only customer_key and derived facts leave this model: no cookie or checkout ids.
with

person_identifiers as (
    select * from {{ ref('int_identity__person_identifiers') }}
),

sessions as (
    select * from {{ ref('int_ga4__sessions') }}
),

checkouts as (
    select * from {{ ref('stg_shopify__checkouts') }}
),

-- the people this model describes: any cookie or any checkout, even without a session
persons as (
    select distinct customer_key
    from person_identifiers
    where identifier_type in ('ga4_cookie', 'shopify_checkout')
),

person_sessions as (
    select
        person_identifiers.customer_key,
        sessions.session_key,
        sessions.started_at,
        sessions.ended_at,
        sessions.device_category,
        sessions.channel,
        sessions.traffic_source,
        sessions.traffic_medium,
        sessions.traffic_campaign,
        sessions.page_views,
        sessions.product_views,
        sessions.add_to_carts
    from person_identifiers
    inner join sessions on person_identifiers.identifier_value = sessions.user_pseudo_id
    where person_identifiers.identifier_type = 'ga4_cookie'
),

session_behaviour as (
    select
        customer_key,
        count(*) as sessions,
        sum(page_views) as page_views,
        sum(product_views) as product_views,
        sum(add_to_carts) as add_to_carts,
        count(*) filter (where add_to_carts > 0) as cart_sessions,
        min(started_at) as first_session_at,
        max(ended_at) as last_seen_at,
        -- shares of all sessions, so sessions from other devices (smart tv, unknown) count too
        round(count(*) filter (where device_category = 'mobile') / count(*), 4) as mobile_session_share,
        round(count(*) filter (where device_category = 'desktop') / count(*), 4)
            as desktop_session_share,
        round(count(*) filter (where device_category = 'tablet') / count(*), 4) as tablet_session_share
    from person_sessions
    group by customer_key
),

device_sessions as (
    select
        customer_key,
        device_category,
        count(*) as sessions
    from person_sessions
    where device_category is not null
    group by customer_key, device_category
),

-- the device with most sessions; a tie goes to mobile, then desktop, then tablet, then by name
main_devices as (
    select
        customer_key,
        device_category as main_device
    from device_sessions
    qualify row_number() over (
        partition by customer_key
        order by
            sessions desc,
            case device_category
                when 'mobile' then 1
                when 'desktop' then 2
                when 'tablet' then 3
                else 4
            end,
            device_category
    ) = 1
),

-- the person's first GA4 session is how the shop acquired them on the web
first_sessions as (
    select
        customer_key,
        -- the first session by start, then by key (arg_min: one pass, no sort of every session)
        arg_min(
            {
                source: traffic_source,
                medium: traffic_medium,
                -- GA4 writes placeholders such as (direct), (organic) or (not set) where there is no campaign
                campaign: case when traffic_campaign not like '(%)' then traffic_campaign end,
                channel: channel
            },
            (started_at, session_key)
        ) as first_session
    from person_sessions
    group by customer_key
),

abandoned_checkouts as (
    select
        person_identifiers.customer_key,
        count(*) as abandoned_checkouts
    from person_identifiers
    inner join checkouts on person_identifiers.identifier_value = checkouts.checkout_id::varchar
    where
        person_identifiers.identifier_type = 'shopify_checkout'
        and checkouts.completed_at is null
    group by person_identifiers.customer_key
),

final as (
    select
        persons.customer_key,
        coalesce(session_behaviour.sessions, 0) as sessions,
        coalesce(session_behaviour.page_views, 0)::bigint as page_views,
        coalesce(session_behaviour.product_views, 0)::bigint as product_views,
        coalesce(session_behaviour.add_to_carts, 0)::bigint as add_to_carts,
        coalesce(session_behaviour.cart_sessions, 0) as cart_sessions,
        coalesce(abandoned_checkouts.abandoned_checkouts, 0) as abandoned_checkouts,
        session_behaviour.last_seen_at,
        {{ dbt.datediff('session_behaviour.last_seen_at', as_of(), 'day') }} as days_since_last_seen,
        session_behaviour.mobile_session_share,
        session_behaviour.desktop_session_share,
        session_behaviour.tablet_session_share,
        main_devices.main_device,
        session_behaviour.first_session_at,
        first_sessions.first_session.source as acquisition_source,
        first_sessions.first_session.medium as acquisition_medium,
        first_sessions.first_session.campaign as acquisition_campaign,
        first_sessions.first_session.channel as acquisition_channel
    from persons
    left join session_behaviour on persons.customer_key = session_behaviour.customer_key
    left join main_devices on persons.customer_key = main_devices.customer_key
    left join first_sessions on persons.customer_key = first_sessions.customer_key
    left join abandoned_checkouts on persons.customer_key = abandoned_checkouts.customer_key
)

select * from final
