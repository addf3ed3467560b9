-- One row per person with Klaviyo email events: how many marketing emails reached them, how they
-- engaged, and the web orders that followed a click.
--
-- An email is one message (campaign_id, Klaviyo's $message) delivered to one profile (a Received
-- Email event). It counts as opened when the profile opened or clicked that message (a click
-- proves the open when the tracking pixel was blocked) and as clicked when it clicked it, however
-- often; so open_rate and click_rate are unique opens and clicks per delivered email, as Klaviyo
-- reports them, and never exceed 1.
{%- set unsubscribe_metrics = ["Unsubscribed", "Unsubscribed from Email Marketing"] %}
{%- set email_metrics = ["Received Email", "Opened Email", "Clicked Email", "Bounced Email",
    "Marked Email as Spam"] + unsubscribe_metrics %}
with

person_identifiers as (
    select * from {{ ref('int_identity__person_identifiers') }}
),

klaviyo_events as (
    select * from {{ ref('stg_klaviyo__events') }}
),

consent as (
    select * from {{ ref('int_customer__consent') }}
),

events as (
    select
        person_identifiers.customer_key,
        klaviyo_events.*,
        -- a message without an id is an email of its own
        coalesce(klaviyo_events.campaign_id, klaviyo_events.event_id) as message_id
    from person_identifiers
    inner join klaviyo_events on person_identifiers.identifier_value = klaviyo_events.profile_id
    where person_identifiers.identifier_type = 'klaviyo_profile'
),

received as (
    select distinct customer_key, profile_id, message_id
    from events
    where metric_name = 'Received Email'
),

-- one row per message a profile opened, or clicked (which proves the open)
engaged as (
    select
        profile_id,
        message_id,
        bool_or(metric_name = 'Clicked Email') as is_clicked
    from events
    where metric_name in ('Opened Email', 'Clicked Email')
    group by profile_id, message_id
),

deliveries as (
    select
        received.customer_key,
        count(*) as emails_received,
        count(engaged.message_id) as emails_opened,
        count(*) filter (where engaged.is_clicked) as emails_clicked
    from received
    left join engaged
        on received.profile_id = engaged.profile_id
        and received.message_id = engaged.message_id
    group by received.customer_key
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

clicks as (
    select customer_key, occurred_at as clicked_at
    from events
    where metric_name = 'Clicked Email'
),

-- Klaviyo's attribution: an order placed within var email_attribution_days (default 5, the
-- lifetime of the campaigns' discount codes) after the person clicked an email
attributed_orders as (
    select
        events.customer_key,
        count(distinct events.event_id) as email_attributed_orders
    from events
    where events.metric_name = 'Placed Order'
        and exists (
            select 1
            from clicks
            where clicks.customer_key = events.customer_key
                and events.occurred_at >= clicks.clicked_at
                and events.occurred_at < clicks.clicked_at
                    + to_days({{ var('email_attribution_days', 5) }})
        )
    group by events.customer_key
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
