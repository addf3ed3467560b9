-- One row per Klaviyo email campaign.
with

campaigns as (
    {{ source_columns('raw_klaviyo', 'campaigns') }}
),

final as (
    select
        id as campaign_id,
        name as campaign_name,
        {{ to_utc_timestamp('send_time') }} as sent_at
    from campaigns
)

select * from final
