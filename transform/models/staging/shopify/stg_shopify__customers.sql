-- One row per valid Shopify customer record: emails trimmed and lower-cased, timestamps in UTC.
-- Malformed records are in audit.quarantined_records instead.
with

customers as (
    select * from {{ ref('base_shopify__customers') }}
),

final as (
    select
        customer_id,
        email,
        phone,
        created_at,
        updated_at,
        account_state,
        is_test_customer,
        email_consent_state,
        email_consent_opt_in_level,
        email_consent_updated_at,
        city,
        country_code
    from customers
    where problem is null
)

select * from final
