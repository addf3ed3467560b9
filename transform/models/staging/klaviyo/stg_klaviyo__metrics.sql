-- One row per Klaviyo metric (event type such as Opened Email).
with

metrics as (
    {{ source_columns('raw_klaviyo', 'metrics') }}
),

final as (
    select
        id as metric_id,
        name as metric_name
    from metrics
)

select * from final
