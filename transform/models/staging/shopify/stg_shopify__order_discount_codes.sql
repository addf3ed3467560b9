-- One row per discount code applied to a valid Shopify order, its amount as a decimal.
with

discount_codes as (
    {{ source_columns('raw_shopify', 'orders', nested='orders__discount_codes') }}
),

orders as (
    -- resolves dlt's parent row id to the order id; not a business join
    select order_id, order_row_id from {{ ref('stg_shopify__orders') }}
),

final as (
    select
        orders.order_id,
        discount_codes._dlt_list_idx as code_position,
        -- Shopify matches codes case-insensitively; upper case groups WELCOME10 and welcome10
        upper(trim(discount_codes.code)) as discount_code,
        discount_codes.type as discount_type,
        {{ to_money('discount_codes.amount') }} as amount
    from discount_codes
    inner join orders on discount_codes._dlt_parent_id = orders.order_row_id
)

select * from final
