-- The win-back audience: customers slipping away (lifecycle stage at risk or churned) whom the
-- shop may email today, one row per person, with what a marketer needs to choose whom to win back.
--
-- Consent decides who is in it, nothing else: only people whose latest email marketing statement
-- is subscribed and who are not suppressed (customer_360.may_email, int_customer__consent). A
-- withdrawal (an unsubscribe in Klaviyo, a Shopify customer unsubscribing, a spam complaint)
-- takes the person out on the next run. The address to write to is the one the consent was given
-- for (the record holding the winning statement), handed out as email_hash: the keyed hash of the
-- email normalised as identity resolution normalises it, which the shop computes the same way in
-- its email tool to find the profile. A person whose consenting record holds no valid address
-- cannot be written to and is left out.
with

customers as (
    select * from {{ ref('customer_360') }}
),

consent as (
    select * from {{ ref('int_customer__consent') }}
),

-- the records a consent statement can come from, with their email as identity resolution reads it
record_emails as (
    select
        'shopify_customer' as statement_source,
        customer_id::varchar as record_id,
        {{ identity_email('email') }} as email
    from {{ ref('stg_shopify__customers') }}
    union all
    select
        'klaviyo_profile' as statement_source,
        profile_id as record_id,
        {{ identity_email('email') }} as email
    from {{ ref('stg_klaviyo__profiles') }}
),

slipping_away as (
    select *
    from customers
    where lifecycle_stage in ('at risk', 'churned')
        and may_email
),

consenting_emails as (
    select
        consent.customer_key,
        consent.email_consent_source,
        consent.email_consent_changed_at,
        keyed_hash(record_emails.email) as email_hash
    from consent
    inner join record_emails
        on consent.email_consent_source = record_emails.statement_source
        and consent.email_consent_record_id = record_emails.record_id
    where consent.may_email
        and consent.email_marketing_consent = 'subscribed'
        and record_emails.email is not null
),

final as (
    select
        slipping_away.customer_key,
        consenting_emails.email_hash,
        consenting_emails.email_consent_source,
        consenting_emails.email_consent_changed_at as consented_at,
        slipping_away.lifecycle_stage,
        slipping_away.churn_risk,
        slipping_away.probability_alive,
        slipping_away.rfm_segment,
        slipping_away.orders,
        slipping_away.net_revenue,
        slipping_away.average_order_value,
        slipping_away.first_order_at,
        slipping_away.last_order_at,
        slipping_away.days_since_last_order,
        slipping_away.avg_days_between_orders,
        slipping_away.expected_next_order_date,
        slipping_away.predicted_clv_365d,
        slipping_away.favourite_category,
        slipping_away.favourite_product,
        slipping_away.discount_order_share,
        slipping_away.emails_received,
        slipping_away.open_rate,
        slipping_away.click_rate,
        slipping_away.last_engaged_at,
        slipping_away.interests,
        slipping_away.preferred_channel,
        slipping_away.country_code,
        -- who to win back first: the most value still to gain, then the most already spent
        row_number() over (
            order by
                slipping_away.predicted_clv_365d desc nulls last,
                slipping_away.net_revenue desc,
                slipping_away.customer_key
        ) as win_back_rank
    from slipping_away
    inner join consenting_emails on slipping_away.customer_key = consenting_emails.customer_key
)

select * from final
