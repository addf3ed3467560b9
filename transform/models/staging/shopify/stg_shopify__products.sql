-- One row per Shopify product; product_type is the shop's category.
with

products as (
    {{ source_columns('raw_shopify', 'products') }}
),

final as (
    select
        id as product_id,
        title as product_title,
        coalesce(nullif(trim(product_type), ''), 'uncategorised') as category,
        vendor,
        status,
        {{ to_utc_timestamp('created_at') }} as created_at
    from products
)

select * from final
