-- One row per GA4 session with its place in the checkout funnel: where it came from and landed,
-- the furthest step it reached (closed funnel, see int_ga4__sessions), when it reached each step
-- and the Shopify order it converted into. BI tools read this, so the session is named by a hash
-- and the person by customer_key: no cookie id or checkout token leaves intermediate.
{%- set steps = var('funnel_steps') %}
with

sessions as (
    select * from {{ ref('int_ga4__sessions') }}
),

cookie_persons as (
    select
        identifier_value as user_pseudo_id,
        customer_key
    from {{ ref('int_identity__person_identifiers') }}
    where identifier_type = 'ga4_cookie'
),

orders as (
    select order_id, customer_key from {{ ref('fct_orders') }}
),

final as (
    select
        md5(sessions.session_key) as session_id,
        -- the buyer of the order it converted into, else the person behind the cookie
        coalesce(orders.customer_key, cookie_persons.customer_key) as customer_key,
        sessions.session_date,
        sessions.started_at,
        sessions.ended_at,
        sessions.device_category,
        sessions.channel,
        sessions.traffic_source,
        sessions.traffic_medium,
        sessions.traffic_campaign,
        sessions.country,
        -- a checkout's page carries its token (a recovery email lands there): not for BI tools
        regexp_replace(
            sessions.landing_page, '(/checkouts/(?:cn/)?)[0-9A-Za-z_-]{16,}', '\1[token]'
        ) as landing_page,
        sessions.page_views,
        sessions.product_views,
        sessions.add_to_carts,
        case
            {%- for step in steps | reverse %}
            when sessions.{{ step }}_at is not null then {{ steps | length - loop.index0 }}
            {%- endfor %}
            else 0
        end as furthest_step_number,
        case
            {%- for step in steps | reverse %}
            when sessions.{{ step }}_at is not null then '{{ step }}'
            {%- endfor %}
            else 'none'
        end as furthest_step,
        {%- for step in steps %}
        sessions.{{ step }}_at is not null as reached_{{ step }},
        {%- endfor %}
        {%- for step in steps %}
        round(epoch(sessions.{{ step }}_at) - epoch(sessions.started_at), 3) as seconds_to_{{ step }},
        {%- endfor %}
        orders.order_id as converted_order_id
    from sessions
    left join orders on sessions.transaction_id = orders.order_id::varchar
    left join cookie_persons on sessions.user_pseudo_id = cookie_persons.user_pseudo_id
)

select * from final
