-- One row per customer: where they are, whether we may email them, what they bought, how they
-- engage with email and how often they visit. No direct identifiers: customer_key is a pseudonym.
with

customers as (
    select * from {{ ref('int_customers') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

profiles as (
    select * from {{ ref('stg_klaviyo__profiles') }}
),

email_events as (
    select * from {{ ref('stg_klaviyo__events') }}
),

sessions as (
    select * from {{ ref('int_ga4__sessions') }}
),

purchases as (
    select
        customer_key,
        count(*) filter (where not is_cancelled) as orders,
        sum(net_revenue) as net_revenue,
        min(ordered_at) filter (where not is_cancelled) as first_order_at,
        max(ordered_at) filter (where not is_cancelled) as last_order_at
    from orders
    where customer_key is not null
    group by customer_key
),

email_engagement as (
    select
        customers.customer_key,
        count(*) filter (where email_events.metric_name = 'Received Email') as emails_received,
        count(*) filter (where email_events.metric_name = 'Opened Email') as emails_opened,
        count(*) filter (where email_events.metric_name = 'Clicked Email') as emails_clicked
    from customers
    inner join profiles on customers.email = profiles.email
    inner join email_events on profiles.profile_id = email_events.profile_id
    group by customers.customer_key
),

web_visits as (
    select
        customers.customer_key,
        count(distinct sessions.session_key) as sessions,
        max(sessions.started_at) as last_session_at
    from customers
    inner join sessions on customers.customer_id::varchar = sessions.user_id
    group by customers.customer_key
),

final as (
    select
        customers.customer_key,
        customers.country_code,
        customers.city,
        customers.created_at as customer_since,
        customers.email_consent_state,
        customers.email_consent_updated_at,
        coalesce(purchases.orders, 0) as orders,
        coalesce(purchases.net_revenue, 0) as net_revenue,
        purchases.first_order_at,
        purchases.last_order_at,
        coalesce(email_engagement.emails_received, 0) as emails_received,
        coalesce(email_engagement.emails_opened, 0) as emails_opened,
        coalesce(email_engagement.emails_clicked, 0) as emails_clicked,
        coalesce(web_visits.sessions, 0) as sessions,
        web_visits.last_session_at
    from customers
    left join purchases on customers.customer_key = purchases.customer_key
    left join email_engagement on customers.customer_key = email_engagement.customer_key
    left join web_visits on customers.customer_key = web_visits.customer_key
)

select * from final
