-- One row per valid Shopify order, timestamps in UTC, money as decimals.
-- Malformed orders (and orders with a malformed line item) are in audit.quarantined_records.
with

orders as (
    select * from {{ ref('base_shopify__orders') }}
),

final as (
    select
        order_id,
        order_name,
        customer_id,
        email,
        created_at,
        processed_at,
        cancelled_at,
        cancelled_at is not null as is_cancelled,
        updated_at,
        cancel_reason,
        financial_status,
        source_name,
        case when source_name = 'pos' then 'in_store' else 'online' end as sales_channel,
        is_test,
        currency,
        total_price,
        subtotal_price,
        total_discounts,
        total_tax,
        location_id,
        order_row_id
    from orders
    where problem is null
)

select * from final
