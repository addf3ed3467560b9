-- One row per Klaviyo profile and interest it stated: the zero-party custom property `interests`,
-- a list that dlt writes to the nested table profiles__properties__interests (rows point to their
-- profile's dlt row key, _dlt_id). Trimmed and lower-cased, as people and forms type them.
with

interests as (
    {{ source_columns('raw_klaviyo', 'profiles', nested='profiles__properties__interests') }}
),

profiles as (
    {{ source_columns('raw_klaviyo', 'profiles') }}
),

final as (
    select distinct
        profiles.id as profile_id,
        lower(trim(interests.value)) as interest
    from interests
    inner join profiles on interests._dlt_parent_id = profiles._dlt_id
    where nullif(trim(interests.value), '') is not null
)

select * from final
