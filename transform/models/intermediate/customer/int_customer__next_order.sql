-- One row per buyer: when they are expected to order next, for the replenishment reminder. A
-- repeat buyer is due their own mean gap between purchase days after the last one; a one-time
-- buyer is due when people who bought the same products came back (the shortest median cycle in
-- repurchase_cycles among the products of their last purchase), or never said when nobody rebought.
with

purchase_days as (
    select * from {{ ref('int_customer__purchase_days') }}
),

order_lines as (
    select * from {{ ref('int_product__order_lines') }}
),

cycles as (
    select * from {{ ref('repurchase_cycles') }}
),

buyers as (
    select
        customer_key,
        max(purchase_date) as last_purchase_date,
        -- null for a single purchase day
        (max(purchase_date) - min(purchase_date))::double / nullif(count(*) - 1, 0)
            as avg_days_between_purchases
    from purchase_days
    group by customer_key
),

last_day_cycles as (
    select
        buyers.customer_key,
        min(cycles.median_days_between_purchases) as product_cycle_days
    from buyers
    inner join order_lines
        on buyers.customer_key = order_lines.customer_key
        and buyers.last_purchase_date = order_lines.order_local_date
    inner join cycles on order_lines.product_id = cycles.product_id
    group by buyers.customer_key
),

final as (
    select
        buyers.customer_key,
        buyers.avg_days_between_purchases,
        last_day_cycles.product_cycle_days,
        buyers.last_purchase_date
            + round(coalesce(buyers.avg_days_between_purchases, last_day_cycles.product_cycle_days))::integer
            as expected_next_order_date
    from buyers
    left join last_day_cycles on buyers.customer_key = last_day_cycles.customer_key
)

select * from final
