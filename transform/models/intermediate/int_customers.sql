-- One row per real (non-test) Shopify customer record with its pseudonymous customer_key.
-- Walking-skeleton identity: one customer record is one customer; person-level stitching across
-- records, emails, devices and in-store sales replaces this in the identity-resolution step.
with

customers as (
    select * from {{ ref('stg_shopify__customers') }}
),

final as (
    select
        md5('shopify:' || customer_id::varchar) as customer_key,
        customer_id,
        email,
        created_at,
        city,
        country_code,
        email_consent_state,
        email_consent_updated_at
    from customers
    where not is_test_customer
)

select * from final
