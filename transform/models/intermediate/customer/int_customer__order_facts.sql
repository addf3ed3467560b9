-- One row per order of fct_orders (test and malformed orders are already out) with what the
-- customer-level models need: shop-local time, items, whether a discount applied, and, for a
-- person's counted orders (not cancelled), their sequence, the gap since the previous one and
-- whether the order brought the person back after they had churned.
with

orders as (
    select * from {{ ref('fct_orders') }}
),

order_items as (
    select
        order_id,
        sum(quantity)::bigint as items
    from {{ ref('stg_shopify__order_lines') }}
    group by order_id
),

order_discount_codes as (
    select
        order_id,
        count(*) as discount_codes
    from {{ ref('stg_shopify__order_discount_codes') }}
    group by order_id
),

localised as (
    select
        orders.order_id,
        orders.customer_key,
        orders.ordered_at,
        -- weekday, hour and calendar day as the shop's customers live them
        {{ to_shop_time('orders.ordered_at') }} as ordered_at_local,
        orders.sales_channel,
        orders.is_cancelled,
        not orders.is_cancelled as is_counted,
        orders.currency,
        orders.gross_revenue,
        orders.discounts,
        orders.refunded,
        orders.net_revenue,
        coalesce(order_items.items, 0) as items,
        coalesce(order_discount_codes.discount_codes, 0) as discount_codes,
        -- a code, or an automatic discount that Shopify records only in total_discounts
        coalesce(order_discount_codes.discount_codes, 0) > 0 or coalesce(orders.discounts, 0) > 0
            as has_discount
    from orders
    left join order_items on orders.order_id = order_items.order_id
    left join order_discount_codes on orders.order_id = order_discount_codes.order_id
),

-- a person's counted orders in time order (cancelled orders and anonymous sales have none)
counted_sequence as (
    select
        order_id,
        ordered_at_local::date as order_local_date,
        row_number() over person_orders as counted_order_number,
        first_value(ordered_at_local::date) over person_orders as first_order_local_date,
        lag(ordered_at_local::date) over person_orders as previous_order_local_date
    from localised
    where is_counted
        and customer_key is not null
    window person_orders as (partition by customer_key order by ordered_at, order_id)
),

churn_gaps as (
    select
        order_id,
        counted_order_number,
        (order_local_date - previous_order_local_date)::integer as days_since_previous_order,
        -- the churn threshold T as it stood just before this order, from the orders until then
        {{ churn_threshold_days('first_order_local_date', 'previous_order_local_date', 'counted_order_number - 1') }}
            as churn_threshold_days_before
    from counted_sequence
),

final as (
    select
        localised.order_id,
        localised.customer_key,
        localised.ordered_at,
        localised.ordered_at_local,
        localised.ordered_at_local::date as order_local_date,
        isodow(localised.ordered_at_local)::integer as order_weekday,
        dayname(localised.ordered_at_local) as order_weekday_name,
        hour(localised.ordered_at_local)::integer as order_hour,
        localised.sales_channel,
        localised.is_cancelled,
        localised.is_counted,
        localised.currency,
        localised.gross_revenue,
        localised.discounts,
        localised.refunded,
        localised.net_revenue,
        localised.items,
        localised.discount_codes,
        localised.has_discount,
        churn_gaps.counted_order_number,
        churn_gaps.days_since_previous_order,
        churn_gaps.churn_threshold_days_before,
        coalesce(churn_gaps.days_since_previous_order > churn_gaps.churn_threshold_days_before, false)
            as is_reactivation
    from localised
    left join churn_gaps on localised.order_id = churn_gaps.order_id
)

select * from final
