-- One row per person (customer_key from identity resolution) with every column family a shop
-- owner asks about: who and where they are, whether we may email them, what they bought, how they
-- engage with email and the web shop, what they told us, their RFM segment and lifecycle stage.
-- Each family is built per person in intermediate/customer/; this mart only puts them side by
-- side. No direct identifiers: no email, phone, name, cookie or source record id.
with

person_identifiers as (
    select * from {{ ref('int_identity__person_identifiers') }}
),

identifiers as (
    select * from {{ ref('int_identity__identifiers') }}
),

persons as (
    select
        person_identifiers.customer_key,
        count(*) as identifiers,
        min(identifiers.first_seen_at) as first_seen_at
    from person_identifiers
    inner join identifiers
        on person_identifiers.identifier_type = identifiers.identifier_type
        and person_identifiers.identifier_value = identifiers.identifier_value
    group by person_identifiers.customer_key
),

-- location: the default address of the person's most recently updated Shopify customer record
locations as (
    select
        person_identifiers.customer_key,
        customers.country_code,
        customers.city
    from person_identifiers
    inner join {{ ref('stg_shopify__customers') }} as customers
        on person_identifiers.identifier_value = customers.customer_id::varchar
    where person_identifiers.identifier_type = 'shopify_customer'
    qualify row_number() over (
        partition by person_identifiers.customer_key order by customers.updated_at desc, customers.customer_id
    ) = 1
),

consent as (
    select * from {{ ref('int_customer__consent') }}
),

purchases as (
    select * from {{ ref('int_customer__purchases') }}
),

email as (
    select * from {{ ref('int_customer__email') }}
),

web as (
    select * from {{ ref('int_customer__web') }}
),

zero_party as (
    select * from {{ ref('int_customer__zero_party') }}
),

predictions as (
    select * from {{ ref('int_customer__clv') }}
),

next_order as (
    select * from {{ ref('int_customer__next_order') }}
),

final as (
    select
        -- identity
        persons.customer_key,
        locations.country_code,
        locations.city,
        persons.first_seen_at,
        web.acquisition_source,
        web.acquisition_medium,
        web.acquisition_campaign,
        web.acquisition_channel,
        persons.identifiers,
        -- consent (no statement at all: never subscribed, may not be emailed)
        coalesce(consent.email_marketing_consent, 'not_subscribed') as email_marketing_consent,
        consent.email_consent_changed_at,
        coalesce(consent.may_email, false) as may_email,
        -- purchases
        coalesce(purchases.orders, 0) as orders,
        coalesce(purchases.items, 0) as items,
        coalesce(purchases.gross_revenue, 0) as gross_revenue,
        coalesce(purchases.net_revenue, 0) as net_revenue,
        purchases.average_order_value,
        purchases.first_order_at,
        purchases.last_order_at,
        purchases.days_since_last_order,
        purchases.online_order_share,
        purchases.in_store_order_share,
        purchases.preferred_weekday,
        purchases.preferred_hour,
        purchases.favourite_category,
        purchases.favourite_product,
        purchases.preferred_payment_method,
        purchases.discount_order_share,
        -- email engagement
        coalesce(email.emails_received, 0) as emails_received,
        coalesce(email.emails_opened, 0) as emails_opened,
        coalesce(email.emails_clicked, 0) as emails_clicked,
        email.open_rate,
        email.click_rate,
        email.last_engaged_at,
        coalesce(consent.email_marketing_consent = 'unsubscribed', false) as is_unsubscribed,
        coalesce(email.has_bounced, false) as has_bounced,
        coalesce(email.marked_as_spam, false) as marked_as_spam,
        coalesce(email.email_attributed_orders, 0) as email_attributed_orders,
        -- web behaviour
        coalesce(web.sessions, 0) as sessions,
        coalesce(web.page_views, 0) as page_views,
        coalesce(web.product_views, 0) as product_views,
        coalesce(web.add_to_carts, 0) as add_to_carts,
        coalesce(web.abandoned_checkouts, 0) as abandoned_checkouts,
        web.last_seen_at,
        web.mobile_session_share,
        web.desktop_session_share,
        web.tablet_session_share,
        web.main_device,
        -- zero-party answers
        zero_party.interests,
        zero_party.preferred_channel,
        zero_party.cart_abandon_reason,
        -- segments
        purchases.recency_score,
        purchases.frequency_score,
        purchases.monetary_score,
        purchases.rfm_segment,
        -- a person who never bought is a prospect
        coalesce(purchases.lifecycle_stage, 'prospect') as lifecycle_stage,
        -- predictions (BG/NBD and Gamma-Gamma, fitted tonight: int_customer__clv_fit)
        predictions.probability_alive,
        case
            when predictions.probability_alive < {{ var('churn_risk_high_below', 0.3) }} then 'high'
            when predictions.probability_alive < {{ var('churn_risk_medium_below', 0.7) }} then 'medium'
            when predictions.probability_alive is not null then 'low'
        end as churn_risk,
        round(predictions.expected_purchases_90d, 3) as expected_purchases_90d,
        round(predictions.expected_purchases_365d, 3) as expected_purchases_365d,
        round(predictions.predicted_clv_365d, 2)::decimal(18, 2) as predicted_clv_365d,
        round(next_order.avg_days_between_purchases, 1) as avg_days_between_orders,
        next_order.expected_next_order_date
    from persons
    left join locations on persons.customer_key = locations.customer_key
    left join consent on persons.customer_key = consent.customer_key
    left join purchases on persons.customer_key = purchases.customer_key
    left join email on persons.customer_key = email.customer_key
    left join web on persons.customer_key = web.customer_key
    left join zero_party on persons.customer_key = zero_party.customer_key
    left join predictions on persons.customer_key = predictions.customer_key
    left join next_order on persons.customer_key = next_order.customer_key
)

select * from final
