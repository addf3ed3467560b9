-- Every source record kept out of the marts because it is malformed, with the problem found.
-- Holds record ids and field names only, never the offending personal data.
with

customers as (
    select * from {{ ref('base_shopify__customers') }}
),

orders as (
    select * from {{ ref('base_shopify__orders') }}
),

quarantined as (
    select
        'shopify' as source_system,
        'customers' as source_table,
        customer_id::varchar as record_id,
        problem,
        load_id
    from customers
    where problem is not null

    union all

    select
        'shopify' as source_system,
        'orders' as source_table,
        order_id::varchar as record_id,
        problem,
        load_id
    from orders
    where problem is not null
),

final as (
    select
        source_system,
        source_table,
        record_id,
        problem,
        load_id
    from quarantined
)

select * from final
