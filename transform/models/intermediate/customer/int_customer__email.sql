-- One row per person with Klaviyo email events: how many marketing emails reached them, how they
-- engaged, and the orders that followed a click.
--
-- An email is one message (campaign_id, Klaviyo's $message) delivered to one profile
-- (int_email__messages): opened when the profile opened or clicked it, clicked when it clicked it,
-- however often; so open_rate and click_rate are unique opens and clicks per delivered email, as
-- Klaviyo reports them, and never exceed 1.
{%- set unsubscribe_metrics = klaviyo_unsubscribe_metrics() %}
{%- set email_metrics = ["Received Email", "Opened Email", "Clicked Email", "Bounced Email",
    "Marked Email as Spam"] + unsubscribe_metrics %}
with

events as (
    select * from {{ ref('int_email__events') }}
),

messages as (
    select * from {{ ref('int_email__messages') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

consent as (
    select * from {{ ref('int_customer__consent') }}
),

deliveries as (
    select
        customer_key,
        count(*) as emails_received,
        count(*) filter (where is_opened) as emails_opened,
        count(*) filter (where is_clicked) as emails_clicked
    from messages
    group by customer_key
),

activity as (
    select
        customer_key,
        max(occurred_at) filter (where metric_name = 'Received Email') as last_email_received_at,
        max(occurred_at) filter (where metric_name in ('Opened Email', 'Clicked Email')) as last_engaged_at,
        max(occurred_at) filter (
            where metric_name in ('{{ unsubscribe_metrics | join("', '") }}')
        ) as unsubscribed_at,
        bool_or(metric_name = 'Bounced Email') as has_bounced_event,
        bool_or(metric_name = 'Marked Email as Spam') as has_spam_event
    from events
    where metric_name in ('{{ email_metrics | join("', '") }}')
    group by customer_key
),

-- the orders fct_orders attributes to an email click (last touch, var email_click_attribution_days)
attributed_orders as (
    select
        customer_key,
        count(*) as email_attributed_orders
    from orders
    where click_attributed_campaign_id is not null
    group by customer_key
),

final as (
    select
        activity.customer_key,
        coalesce(deliveries.emails_received, 0) as emails_received,
        coalesce(deliveries.emails_opened, 0) as emails_opened,
        coalesce(deliveries.emails_clicked, 0) as emails_clicked,
        deliveries.emails_opened / nullif(deliveries.emails_received, 0) as open_rate,
        deliveries.emails_clicked / nullif(deliveries.emails_received, 0) as click_rate,
        activity.last_email_received_at,
        activity.last_engaged_at,
        -- the consent rule's verdict, so an unsubscribe later undone by a new sign-up does not count
        coalesce(consent.email_marketing_consent = 'unsubscribed', activity.unsubscribed_at is not null)
            as is_unsubscribed,
        activity.unsubscribed_at,
        -- Klaviyo's suppression list also remembers bounces and complaints older than the events loaded
        activity.has_bounced_event
            or coalesce(contains(consent.email_suppression_reasons, 'hard_bounce'), false) as has_bounced,
        activity.has_spam_event
            or coalesce(contains(consent.email_suppression_reasons, 'spam_complaint'), false) as marked_as_spam,
        coalesce(attributed_orders.email_attributed_orders, 0) as email_attributed_orders
    from activity
    left join deliveries on activity.customer_key = deliveries.customer_key
    left join consent on activity.customer_key = consent.customer_key
    left join attributed_orders on activity.customer_key = attributed_orders.customer_key
)

select * from final
