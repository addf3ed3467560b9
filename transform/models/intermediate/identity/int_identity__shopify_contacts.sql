-- One row per valid Shopify order and per abandoned checkout: the email and phone typed on it, as
-- typed, and the checkout's token (the id in its checkout page URLs, /checkouts/<token>/…).
-- Staging does not carry these columns (order phone; checkout email, phone and token), so they are
-- read from the raw tables here (source_columns) and normalised downstream.
with

raw_orders as (
    {{ source_columns('raw_shopify', 'orders') }}
),

raw_checkouts as (
    {{ source_columns('raw_shopify', 'checkouts') }}
),

valid_orders as (
    select order_id from {{ ref('stg_shopify__orders') }}
),

checkouts as (
    select checkout_id from {{ ref('stg_shopify__checkouts') }}
),

order_contacts as (
    select
        'shopify_order' as record_type,
        raw_orders.id as record_id,
        raw_orders.email,
        raw_orders.phone,
        cast(null as varchar) as checkout_token
    from raw_orders
    inner join valid_orders on raw_orders.id = valid_orders.order_id
),

checkout_contacts as (
    select
        'shopify_checkout' as record_type,
        raw_checkouts.id as record_id,
        raw_checkouts.email,
        raw_checkouts.phone,
        nullif(trim(raw_checkouts.token), '') as checkout_token
    from raw_checkouts
    inner join checkouts on raw_checkouts.id = checkouts.checkout_id
),

final as (
    select * from order_contacts
    union all
    select * from checkout_contacts
)

select * from final
