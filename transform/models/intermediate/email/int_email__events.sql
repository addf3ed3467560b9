-- Klaviyo email and order events of every profile identity resolution gave a person, with the
-- person's customer_key and the message the event is about. The one place email events meet
-- people: engagement (int_customer__email), per-message facts (int_email__messages) and order
-- attribution (fct_orders) all start here.
with

person_identifiers as (
    select * from {{ ref('int_identity__person_identifiers') }}
),

klaviyo_events as (
    select * from {{ ref('stg_klaviyo__events') }}
),

final as (
    select
        person_identifiers.customer_key,
        klaviyo_events.event_id,
        klaviyo_events.profile_id,
        klaviyo_events.metric_name,
        klaviyo_events.occurred_at,
        klaviyo_events.campaign_id,
        -- a message without an id is an email of its own
        coalesce(klaviyo_events.campaign_id, klaviyo_events.event_id) as message_id
    from person_identifiers
    inner join klaviyo_events on person_identifiers.identifier_value = klaviyo_events.profile_id
    where person_identifiers.identifier_type = 'klaviyo_profile'
)

select * from final
