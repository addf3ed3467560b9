-- One row per Klaviyo profile: email normalised (trimmed, lower-cased), consent typed, suppression
-- reasons and zero-party custom properties (preferred channel, cart abandon reason) as columns.
with

profiles as (
    {{ source_columns('raw_klaviyo', 'profiles') }}
),

typed as (
    select
        *,
        -- dlt keeps the suppression array as JSON (it is nested deeper than max_table_nesting)
        from_json(
            subscriptions__email__marketing__suppression, '[{"reason": "VARCHAR", "timestamp": "VARCHAR"}]'
        ) as suppressions
    from profiles
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
        {{ to_utc_timestamp('subscriptions__email__marketing__last_updated') }} as email_consent_last_updated_at,
        subscriptions__email__marketing__can_receive_email_marketing as can_receive_email_marketing,
        coalesce(
            list_sort(list_distinct(list_transform(suppressions, lambda suppression: suppression.reason))),
            []::varchar[]
        ) as email_suppression_reasons,
        list_min(
            list_transform(suppressions, lambda suppression: {{ to_utc_timestamp('suppression.timestamp') }})
        ) as email_suppressed_at,
        -- free-text custom properties: compare them trimmed and lower-cased
        nullif(lower(trim(properties__preferred_channel)), '') as preferred_channel,
        nullif(lower(trim(properties__cart_abandon_reason)), '') as cart_abandon_reason
    from typed
)

select * from final
