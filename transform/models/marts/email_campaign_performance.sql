-- One row per Klaviyo email campaign: reach, unique engagement, list damage (unsubscribes,
-- bounces, complaints) and the orders fct_orders attributes to it by click and by open.
{%- set unsubscribe_metrics = klaviyo_unsubscribe_metrics() %}
{%- set list_damage_metrics = unsubscribe_metrics + ['Bounced Email', 'Marked Email as Spam'] %}
with

campaigns as (
    select * from {{ ref('stg_klaviyo__campaigns') }}
),

messages as (
    select * from {{ ref('int_email__messages') }}
),

events as (
    select * from {{ ref('stg_klaviyo__events') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

engagement as (
    select
        campaign_id,
        count(*) as recipients,
        count(*) filter (where is_opened) as opened,
        count(*) filter (where is_clicked) as clicked
    from messages
    where campaign_id is not null
    group by campaign_id
),

list_damage as (
    select
        campaign_id,
        count(distinct profile_id) filter (where metric_name in ('{{ unsubscribe_metrics | join("', '") }}'))
            as unsubscribes,
        count(distinct profile_id) filter (where metric_name = 'Bounced Email') as bounces,
        count(distinct profile_id) filter (where metric_name = 'Marked Email as Spam') as spam_complaints
    from events
    where campaign_id is not null
        -- only these few events: each distinct count would otherwise sort through every event
        and metric_name in ('{{ list_damage_metrics | join("', '") }}')
    group by campaign_id
),

click_orders as (
    select
        click_attributed_campaign_id as campaign_id,
        count(*) as orders,
        sum(net_revenue) as net_revenue
    from orders
    where click_attributed_campaign_id is not null
    group by click_attributed_campaign_id
),

open_orders as (
    select
        open_attributed_campaign_id as campaign_id,
        count(*) as orders,
        sum(net_revenue) as net_revenue
    from orders
    where open_attributed_campaign_id is not null
    group by open_attributed_campaign_id
),

final as (
    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.sent_at,
        coalesce(engagement.recipients, 0) as recipients,
        coalesce(engagement.opened, 0) as opened,
        coalesce(engagement.clicked, 0) as clicked,
        engagement.opened / nullif(engagement.recipients, 0) as open_rate,
        engagement.clicked / nullif(engagement.recipients, 0) as click_rate,
        engagement.clicked / nullif(engagement.opened, 0) as click_to_open_rate,
        coalesce(list_damage.unsubscribes, 0) as unsubscribes,
        coalesce(list_damage.bounces, 0) as bounces,
        coalesce(list_damage.spam_complaints, 0) as spam_complaints,
        coalesce(click_orders.orders, 0) as click_attributed_orders,
        coalesce(click_orders.net_revenue, 0) as click_attributed_net_revenue,
        coalesce(open_orders.orders, 0) as open_attributed_orders,
        coalesce(open_orders.net_revenue, 0) as open_attributed_net_revenue,
        round(coalesce(click_orders.net_revenue, 0) / nullif(engagement.recipients, 0), 2)::double
            as click_attributed_revenue_per_recipient
    from campaigns
    left join engagement on campaigns.campaign_id = engagement.campaign_id
    left join list_damage on campaigns.campaign_id = list_damage.campaign_id
    left join click_orders on campaigns.campaign_id = click_orders.campaign_id
    left join open_orders on campaigns.campaign_id = open_orders.campaign_id
)

select * from final
