-- One row per Shopify order of a real customer or an anonymous in-store sale (test orders
-- excluded), with the person who placed it (customer_key; null for an anonymous walk-in sale).
-- Revenue is net of refunds; a cancelled order's net revenue is zero.
--
-- Email attribution, last touch as Klaviyo does it: an online order is attributed to the latest
-- email its buyer clicked within var email_click_attribution_days before it (default 5), and,
-- separately, to the latest email they opened within var email_open_attribution_days (default 1).
-- In-store sales are not attributed: a click cannot be tied to a walk-in.
{%- set touches = {'click': 'Clicked Email', 'open': 'Opened Email'} %}
with

orders as (
    select * from {{ ref('stg_shopify__orders') }}
),

refunds as (
    select
        order_id,
        sum(amount) as refunded,
        max(refunded_at) as last_refunded_at
    from {{ ref('stg_shopify__refunds') }}
    group by order_id
),

order_persons as (
    select
        identifier_value as order_id,
        customer_key
    from {{ ref('int_identity__person_identifiers') }}
    where identifier_type = 'shopify_order'
),

email_touches as (
    select customer_key, metric_name, occurred_at as touched_at, campaign_id
    from {{ ref('int_email__events') }}
    where metric_name in ('{{ touches.values() | join("', '") }}')
        and campaign_id is not null
),

orders_with_persons as (
    select
        orders.*,
        order_persons.customer_key
    from orders
    left join order_persons on orders.order_id::varchar = order_persons.order_id
    where not orders.is_test
),

{% for kind, metric in touches.items() %}
-- the buyer's latest {{ kind }} at or before each order
last_{{ kind }} as (
    select
        orders_with_persons.order_id,
        touches.campaign_id,
        touches.touched_at
    from orders_with_persons
    asof left join (select * from email_touches where metric_name = '{{ metric }}') as touches
        on orders_with_persons.customer_key = touches.customer_key
        and orders_with_persons.created_at >= touches.touched_at
),
{% endfor %}
final as (
    select
        orders.order_id,
        orders.customer_key,
        orders.created_at as ordered_at,
        orders.created_at::date as order_date,
        orders.sales_channel,
        orders.financial_status,
        orders.is_cancelled,
        orders.currency,
        orders.total_price as gross_revenue,
        orders.total_discounts as discounts,
        coalesce(refunds.refunded, 0) as refunded,
        case
            when orders.is_cancelled then 0
            else orders.total_price - coalesce(refunds.refunded, 0)
        end as net_revenue,
        {%- for kind in touches %}
        case
            when orders.sales_channel = 'online'
                and orders.created_at < last_{{ kind }}.touched_at
                    + to_days({{ var('email_' ~ kind ~ '_attribution_days') }})
                then last_{{ kind }}.campaign_id
        end as {{ kind }}_attributed_campaign_id{{ "," if not loop.last }}
        {%- endfor %}
    from orders_with_persons as orders
    left join refunds on orders.order_id = refunds.order_id
    {%- for kind in touches %}
    left join last_{{ kind }} on orders.order_id = last_{{ kind }}.order_id
    {%- endfor %}
)

select * from final
