-- One row per payment gateway named on a valid Shopify order (payment_gateway_names): usually
-- one, several when the customer split the payment (e.g. a gift card and a card).
with

gateway_names as (
    {{ source_columns('raw_shopify', 'orders', nested='orders__payment_gateway_names') }}
),

orders as (
    -- resolves dlt's parent row id to the order id; not a business join
    select order_id, order_row_id from {{ ref('stg_shopify__orders') }}
),

final as (
    select
        orders.order_id,
        gateway_names._dlt_list_idx as gateway_position,
        nullif(trim(gateway_names.value), '') as payment_gateway
    from gateway_names
    inner join orders on gateway_names._dlt_parent_id = orders.order_row_id
)

select * from final
