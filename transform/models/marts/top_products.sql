-- Best-selling products: one row per product sold in a counted order (fct_orders, not cancelled;
-- anonymous in-store sales included), ranked by line revenue and by units. Line revenue is unit
-- price × quantity minus the line's discount, VAT included, shipping excluded, and gross of
-- refunds: staging has refunds per order, not per line, so a returned item still counts here.
with

order_lines as (
    select * from {{ ref('int_product__order_lines') }}
),

per_product as (
    select
        product_id,
        product_title,
        category,
        sum(quantity)::bigint as units,
        sum(unit_price * quantity)::decimal(38, 2) as gross_sales,
        sum(discount)::decimal(38, 2) as line_discounts,
        sum(line_revenue)::decimal(38, 2) as line_revenue,
        count(distinct order_id) as orders,
        count(distinct customer_key) as buyers
    from order_lines
    group by product_id, product_title, category
),

final as (
    select
        product_id,
        product_title,
        category,
        units,
        gross_sales,
        line_discounts,
        line_revenue,
        orders,
        buyers,
        round(line_revenue / nullif(sum(line_revenue) over (), 0), 4)::double as revenue_share,
        -- ties share a rank (1, 1, 3), so "top 5" may hold more than five products
        rank() over (order by line_revenue desc) as revenue_rank,
        rank() over (order by units desc) as units_rank
    from per_product
)

select * from final
