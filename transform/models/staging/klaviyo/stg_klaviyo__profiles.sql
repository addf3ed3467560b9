-- One row per Klaviyo profile: email normalised (trimmed, lower-cased), consent typed.
with

profiles as (
    {{ source_columns('raw_klaviyo', 'profiles') }}
),

final as (
    select
        id as profile_id,
        {{ normalise_email('email') }} as email,
        phone_number as phone,
        {{ to_utc_timestamp('created') }} as created_at,
        timezone('UTC', updated) as updated_at,
        location__city as city,
        location__country as country,
        subscriptions__email__marketing__consent as email_consent,
        {{ to_utc_timestamp('subscriptions__email__marketing__consent_timestamp') }} as email_consent_at,
        subscriptions__email__marketing__can_receive_email_marketing as can_receive_email_marketing
    from profiles
)

select * from final
