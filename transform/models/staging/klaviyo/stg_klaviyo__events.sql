-- One row per Klaviyo event, timestamps in UTC.
with

events as (
    {{ source_columns('raw_klaviyo', 'events', load_id=true) }}
),

final as (
    select
        id as event_id,
        profile_id,
        metric_name,
        timezone('UTC', datetime) as occurred_at,
        event_properties___message as campaign_id,
        _dlt_load_id
    from events
)

select * from final
