-- One row per abandoned Shopify checkout (begun, not completed), timestamps in UTC.
with

checkouts as (
    {{ source_columns('raw_shopify', 'checkouts') }}
),

final as (
    select
        id as checkout_id,
        customer__id as customer_id,
        {{ to_utc_timestamp('created_at') }} as created_at,
        {{ to_utc_timestamp('completed_at') }} as completed_at,
        {{ to_money('total_price') }} as cart_value
    from checkouts
)

select * from final
