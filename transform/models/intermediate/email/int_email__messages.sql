-- One row per marketing email delivered: a message (campaign) that reached a profile (a Received
-- Email event), and whether and when the profile first opened and clicked it. A click proves the
-- open when the tracking pixel was blocked, so a clicked message is opened too; repeated opens and
-- clicks count once, as Klaviyo's unique open and click rates do.
with

events as (
    select * from {{ ref('int_email__events') }}
),

received as (
    select
        customer_key,
        profile_id,
        message_id,
        any_value(campaign_id) as campaign_id,
        min(occurred_at) as received_at
    from events
    where metric_name = 'Received Email'
    group by customer_key, profile_id, message_id
),

engaged as (
    select
        profile_id,
        message_id,
        min(occurred_at) as first_opened_at,
        min(occurred_at) filter (where metric_name = 'Clicked Email') as first_clicked_at
    from events
    where metric_name in ('Opened Email', 'Clicked Email')
    group by profile_id, message_id
),

final as (
    select
        received.customer_key,
        received.profile_id,
        received.message_id,
        received.campaign_id,
        received.received_at,
        engaged.first_opened_at,
        engaged.first_clicked_at,
        engaged.first_opened_at is not null as is_opened,
        engaged.first_clicked_at is not null as is_clicked
    from received
    left join engaged
        on received.profile_id = engaged.profile_id
        and received.message_id = engaged.message_id
)

select * from final
