-- One row per line item of a counted order (fct_orders, not cancelled: test and malformed orders
-- are already out; anonymous in-store sales are in, they are real baskets), with the buyer, the
-- shop-local order date and the product's current title and category. The one place the product
-- marts take their order lines from, so they all count the same orders.
with

orders as (
    select * from {{ ref('fct_orders') }}
),

order_lines as (
    select * from {{ ref('stg_shopify__order_lines') }}
),

products as (
    select * from {{ ref('stg_shopify__products') }}
),

counted_orders as (
    select
        order_id,
        customer_key,
        ordered_at,
        {{ to_shop_time('ordered_at') }}::date as order_local_date
    from orders
    where not is_cancelled
),

-- a custom item (no product) cannot be ranked or paired, so it stays out
counted_lines as (
    select
        order_lines.order_line_id,
        order_lines.order_id,
        counted_orders.customer_key,
        counted_orders.ordered_at,
        counted_orders.order_local_date,
        order_lines.product_id,
        order_lines.product_title as line_product_title,
        order_lines.quantity,
        order_lines.unit_price,
        order_lines.discount
    from order_lines
    inner join counted_orders on order_lines.order_id = counted_orders.order_id
    where order_lines.product_id is not null
),

-- the title on the latest line names a product that is no longer in the catalogue
latest_line_titles as (
    select
        product_id,
        arg_max(line_product_title, ordered_at) as product_title
    from counted_lines
    group by product_id
),

final as (
    select
        counted_lines.order_line_id,
        counted_lines.order_id,
        counted_lines.customer_key,
        counted_lines.ordered_at,
        counted_lines.order_local_date,
        counted_lines.product_id,
        coalesce(products.product_title, latest_line_titles.product_title) as product_title,
        coalesce(products.category, 'uncategorised') as category,
        counted_lines.quantity,
        counted_lines.unit_price,
        counted_lines.discount,
        (counted_lines.unit_price * counted_lines.quantity - counted_lines.discount)::decimal(18, 2)
            as line_revenue
    from counted_lines
    left join products on counted_lines.product_id = products.product_id
    left join latest_line_titles on counted_lines.product_id = latest_line_titles.product_id
)

select * from final
