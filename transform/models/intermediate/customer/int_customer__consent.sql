-- One row per person who made a statement about email marketing (a Shopify customer record with
-- an email, a Klaviyo profile, an unsubscribe or spam complaint): their consent as of the latest
-- statement, and whether the shop may send them marketing email.
--
-- Consent rule (GDPR: never email someone whose latest statement withdrew consent):
--   1. every record of the person is a statement: subscribed, unsubscribed or not_subscribed;
--   2. the most recent statement wins, by its own timestamp (Shopify consent_updated_at, Klaviyo
--      consent_timestamp or last_updated, the event's time);
--   3. a statement without a timestamp loses against every timestamped one;
--   4. on equal timestamps (or none) the more restrictive one wins:
--      unsubscribed > not_subscribed > subscribed.
-- may_email needs the winning statement to be subscribed and no suppression at all.
{%- set unsubscribe_metrics = klaviyo_unsubscribe_metrics() %}
{%- set spam_metrics = ["Marked Email as Spam"] %}
{%- set bounce_metrics = ["Bounced Email"] %}
with

person_identifiers as (
    select * from {{ ref('int_identity__person_identifiers') }}
),

shopify_customers as (
    select * from {{ ref('stg_shopify__customers') }}
),

klaviyo_profiles as (
    select * from {{ ref('stg_klaviyo__profiles') }}
),

klaviyo_events as (
    select * from {{ ref('stg_klaviyo__events') }}
),

shopify_statements as (
    select
        person_identifiers.customer_key,
        'shopify_customer' as statement_source,
        shopify_customers.customer_id::varchar as record_id,
        case lower(shopify_customers.email_consent_state)
            when 'subscribed' then 'subscribed'
            when 'unsubscribed' then 'unsubscribed'
            -- the customer's personal data was erased on request: never email again
            when 'redacted' then 'unsubscribed'
            -- not_subscribed; pending (double opt-in not confirmed yet); invalid (an address
            -- Shopify cannot mail, suppressed below); anything unknown: no consent
            else 'not_subscribed'
        end as consent,
        shopify_customers.email_consent_updated_at as stated_at,
        lower(shopify_customers.email_consent_state) = 'invalid' as is_invalid_address
    from person_identifiers
    inner join shopify_customers
        on person_identifiers.identifier_value = shopify_customers.customer_id::varchar
    where person_identifiers.identifier_type = 'shopify_customer'
        -- a record without an email (a store customer known by phone) says nothing about email
        and shopify_customers.email_consent_state is not null
),

profiles as (
    select
        person_identifiers.customer_key,
        klaviyo_profiles.*
    from person_identifiers
    inner join klaviyo_profiles on person_identifiers.identifier_value = klaviyo_profiles.profile_id
    where person_identifiers.identifier_type = 'klaviyo_profile'
),

profile_statements as (
    select
        customer_key,
        'klaviyo_profile' as statement_source,
        profile_id as record_id,
        case upper(email_consent)
            when 'SUBSCRIBED' then 'subscribed'
            when 'UNSUBSCRIBED' then 'unsubscribed'
            else 'not_subscribed'
        end as consent,
        -- Klaviyo leaves consent_timestamp empty on some changes; last_updated then dates it
        coalesce(email_consent_at, email_consent_last_updated_at) as stated_at
    from profiles
    where email_consent is not null
),

events as (
    select
        person_identifiers.customer_key,
        klaviyo_events.*
    from person_identifiers
    inner join klaviyo_events on person_identifiers.identifier_value = klaviyo_events.profile_id
    where person_identifiers.identifier_type = 'klaviyo_profile'
),

-- an unsubscribe or spam complaint withdraws consent when it happens, even if the profile that
-- records it has not been loaded again since
event_statements as (
    select
        customer_key,
        'klaviyo_event' as statement_source,
        event_id as record_id,
        'unsubscribed' as consent,
        occurred_at as stated_at
    from events
    where metric_name in ('{{ (unsubscribe_metrics + spam_metrics) | join("', '") }}')
),

statements as (
    select customer_key, statement_source, record_id, consent, stated_at from shopify_statements
    union all
    select customer_key, statement_source, record_id, consent, stated_at from profile_statements
    union all
    select customer_key, statement_source, record_id, consent, stated_at from event_statements
),

latest_statements as (
    select *
    from statements
    qualify row_number() over (
        partition by customer_key
        order by
            stated_at desc nulls last,
            case consent when 'unsubscribed' then 1 when 'not_subscribed' then 2 else 3 end,
            -- the same statement in several places: name the email tool's profile as its source
            case statement_source when 'klaviyo_profile' then 1 when 'shopify_customer' then 2 else 3 end,
            record_id
    ) = 1
),

conflicts as (
    select
        customer_key,
        count(distinct consent) > 1 as has_conflicting_consent
    from statements
    group by customer_key
),

-- reasons the address must not be mailed whatever the consent, in Klaviyo's vocabulary
suppression_reasons as (
    select customer_key, lower(unnest(email_suppression_reasons)) as reason from profiles
    union
    select customer_key, 'hard_bounce' as reason from events
    where metric_name in ('{{ bounce_metrics | join("', '") }}')
    union
    select customer_key, 'spam_complaint' as reason from events
    where metric_name in ('{{ spam_metrics | join("', '") }}')
    union
    select customer_key, 'invalid_email' as reason from shopify_statements
    where is_invalid_address
),

suppressions as (
    select
        customer_key,
        string_agg(reason, ',' order by reason) as email_suppression_reasons
    from suppression_reasons
    group by customer_key
),

final as (
    select
        latest_statements.customer_key,
        latest_statements.consent as email_marketing_consent,
        latest_statements.stated_at as email_consent_changed_at,
        latest_statements.statement_source as email_consent_source,
        latest_statements.record_id as email_consent_record_id,
        conflicts.has_conflicting_consent,
        suppressions.customer_key is not null as is_email_suppressed,
        suppressions.email_suppression_reasons,
        latest_statements.consent = 'subscribed' and suppressions.customer_key is null as may_email
    from latest_statements
    inner join conflicts on latest_statements.customer_key = conflicts.customer_key
    left join suppressions on latest_statements.customer_key = suppressions.customer_key
)

select * from final
