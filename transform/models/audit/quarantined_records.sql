-- Every source record kept out of the marts, with the problem found: records the extractors could
-- not load as they are (no id, no usable cursor) and records staging rejects (bad timestamp, amount,
-- email or quantity). Holds record ids and field names only, never the offending personal data.
with

customers as (
    select * from {{ ref('base_shopify__customers') }}
),

orders as (
    select * from {{ ref('base_shopify__orders') }}
),

shopify_extract as (
    {{ source_columns('raw_shopify', 'customers', nested='quarantined_records') }}
),

klaviyo_extract as (
    {{ source_columns('raw_klaviyo', 'profiles', nested='quarantined_records') }}
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

    union all

    select
        'shopify' as source_system,
        source_table,
        record_id,
        reason as problem,
        _dlt_load_id as load_id
    from shopify_extract

    union all

    select
        'klaviyo' as source_system,
        source_table,
        record_id,
        reason as problem,
        _dlt_load_id as load_id
    from klaviyo_extract
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
