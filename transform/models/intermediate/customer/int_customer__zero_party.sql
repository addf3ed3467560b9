-- One row per person who told the shop something about themselves through Klaviyo profile
-- custom properties: interests, preferred channel, why they left a cart.
--
-- Klaviyo keeps only a property's current value (a new answer overwrites the old one) and no
-- answer time, so each column is the person's current answer. A person with several profiles:
-- interests are the union of all of them; the single-valued answers come from the most recently
-- updated profile that has one.
with

person_identifiers as (
    select * from {{ ref('int_identity__person_identifiers') }}
),

klaviyo_profiles as (
    select * from {{ ref('stg_klaviyo__profiles') }}
),

profile_interests as (
    select * from {{ ref('stg_klaviyo__profile_interests') }}
),

profiles as (
    select
        person_identifiers.customer_key,
        klaviyo_profiles.profile_id,
        klaviyo_profiles.updated_at,
        klaviyo_profiles.preferred_channel,
        klaviyo_profiles.cart_abandon_reason
    from person_identifiers
    inner join klaviyo_profiles on person_identifiers.identifier_value = klaviyo_profiles.profile_id
    where person_identifiers.identifier_type = 'klaviyo_profile'
),

interests as (
    select
        profiles.customer_key,
        -- comma-separated like source_systems: readable in any BI tool, split with string_split
        string_agg(distinct profile_interests.interest, ',' order by profile_interests.interest) as interests
    from profiles
    inner join profile_interests on profiles.profile_id = profile_interests.profile_id
    group by profiles.customer_key
),

preferred_channels as (
    select customer_key, preferred_channel
    from profiles
    where preferred_channel is not null
    qualify row_number() over (
        partition by customer_key order by updated_at desc nulls last, profile_id
    ) = 1
),

cart_abandon_reasons as (
    select customer_key, cart_abandon_reason
    from profiles
    where cart_abandon_reason is not null
    qualify row_number() over (
        partition by customer_key order by updated_at desc nulls last, profile_id
    ) = 1
),

persons as (
    select customer_key from interests
    union
    select customer_key from preferred_channels
    union
    select customer_key from cart_abandon_reasons
),

final as (
    select
        persons.customer_key,
        interests.interests,
        preferred_channels.preferred_channel,
        cart_abandon_reasons.cart_abandon_reason
    from persons
    left join interests on persons.customer_key = interests.customer_key
    left join preferred_channels on persons.customer_key = preferred_channels.customer_key
    left join cart_abandon_reasons on persons.customer_key = cart_abandon_reasons.customer_key
)

select * from final
