-- One row per Shopify order of a real customer or an anonymous in-store sale (test orders
-- excluded), with the person who placed it (customer_key; null for an anonymous walk-in sale). Revenue is net of refunds; a cancelled order's net revenue is zero.
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

final as (
    select
        orders.order_id,
        order_persons.customer_key,
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
        end as net_revenue
    from orders
    left join refunds on orders.order_id = refunds.order_id
    left join order_persons on orders.order_id::varchar = order_persons.order_id
    where not orders.is_test
)

select * from final
