-- How long people take to buy a product again: one row per product bought by a known person
-- (anonymous in-store sales cannot be followed). A purchase is a person buying the product on a
-- shop-local calendar day (var shop_timezone); two orders of it on one day are one purchase. A
-- repurchase is the next purchase of the same product by the same person (customer_key) on a
-- later day; its gap is the days between the two days. Counted orders only (fct_orders, not
-- cancelled).
with

order_lines as (
    select * from {{ ref('int_product__order_lines') }}
),

purchases as (
    select distinct
        customer_key,
        product_id,
        product_title,
        category,
        order_local_date
    from order_lines
    where customer_key is not null
),

purchase_gaps as (
    select
        customer_key,
        product_id,
        product_title,
        category,
        {{ dbt.datediff(
            'lag(order_local_date) over (partition by customer_key, product_id order by order_local_date)',
            'order_local_date',
            'day'
        ) }} as days_since_previous
    from purchases
),

per_product as (
    select
        product_id,
        product_title,
        category,
        count(distinct customer_key) as buyers,
        count(distinct case when days_since_previous is not null then customer_key end) as rebuyers,
        count(days_since_previous) as repurchases,
        quantile_cont(days_since_previous, 0.5) as median_days_between_purchases,
        quantile_cont(days_since_previous, 0.25) as p25_days_between_purchases,
        quantile_cont(days_since_previous, 0.75) as p75_days_between_purchases
    from purchase_gaps
    group by product_id, product_title, category
),

final as (
    select
        product_id,
        product_title,
        category,
        buyers,
        rebuyers,
        round(rebuyers / buyers, 4) as rebuy_rate,
        repurchases,
        median_days_between_purchases::double as median_days_between_purchases,
        p25_days_between_purchases::double as p25_days_between_purchases,
        p75_days_between_purchases::double as p75_days_between_purchases
    from per_product
)

select * from final
