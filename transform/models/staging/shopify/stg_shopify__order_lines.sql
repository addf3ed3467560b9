-- One row per line item of a valid Shopify order.
with

line_items as (
    {{ source_columns('raw_shopify', 'orders', nested='orders__line_items') }}
),

orders as (
    -- resolves dlt's parent row id to the order id; not a business join
    select order_id, order_row_id from {{ ref('stg_shopify__orders') }}
),

final as (
    select
        line_items.id as order_line_id,
        orders.order_id,
        line_items.product_id,
        line_items.variant_id,
        line_items.title as product_title,
        line_items.sku,
        line_items.quantity,
        {{ to_money('line_items.price') }} as unit_price,
        coalesce({{ to_money('line_items.total_discount') }}, 0) as discount
    from line_items
    inner join orders on line_items._dlt_parent_id = orders.order_row_id
)

select * from final
