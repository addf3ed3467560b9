-- One row per Klaviyo list.
with

lists as (
    {{ source_columns('raw_klaviyo', 'lists') }}
),

final as (
    select
        id as list_id,
        name as list_name,
        {{ to_utc_timestamp('created') }} as created_at
    from lists
)

select * from final
