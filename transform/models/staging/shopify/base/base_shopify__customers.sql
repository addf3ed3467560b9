{{ config(materialized='ephemeral') }}
-- Shopify customers typed, with the problem that quarantines a record (null when it is valid).
with

customers as (
    {{ source_columns('raw_shopify', 'customers') }}
),

typed as (
    select
        id as customer_id,
        {{ normalise_email('email') }} as email,
        nullif(trim(phone), '') as phone,
        created_at as created_at_raw,
        {{ to_utc_timestamp('created_at') }} as created_at,
        timezone('UTC', updated_at) as updated_at,
        state as account_state,
        list_contains(
            list_transform(string_split(lower(coalesce(tags, '')), ','), lambda tag: trim(tag)),
            '{{ var("test_customer_tag") }}'
        ) as is_test_customer,
        email_marketing_consent__state as email_consent_state,
        email_marketing_consent__opt_in_level as email_consent_opt_in_level,
        {{ to_utc_timestamp('email_marketing_consent__consent_updated_at') }} as email_consent_updated_at,
        default_address__city as city,
        upper(default_address__country_code) as country_code,
        _dlt_load_id as load_id
    from customers
),

final as (
    select
        *,
        case
            when customer_id is null then 'id is missing'
            when created_at is null then 'created_at ' || coalesce('''' || created_at_raw || '''', 'null')
                || ' is not an ISO 8601 timestamp'
            -- the address itself is personal data: name the field, not the value
            when email is not null and not {{ is_valid_email('email') }} then 'email is not a valid address'
        end as problem
    from typed
)

select * from final
