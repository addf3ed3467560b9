{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_id',
        on_schema_change='append_new_columns',
        post_hook="{{ forget_profiles_gone_from(ref('int_identity__person_identifiers'), 'identifier_value', \"identifier_type = 'klaviyo_profile'\") }}",
    )
}}
-- Klaviyo email and order events of every profile identity resolution gave a person, with the
-- person's customer_key and the message the event is about. The one place email events meet
-- people: engagement (int_customer__email), per-message facts (int_email__messages) and order
-- attribution (fct_orders) all start here.
-- Incremental (decision 34): a run rebuilds the events dlt loaded since the last build and every
-- event of a profile whose person changed (people merged or split, a profile newly resolved);
-- the events of a profile no person holds any more are deleted (post-hook). A warehouse built
-- before this model was incremental has no _dlt_load_id here (append_new_columns adds it, empty),
-- so its first incremental run rebuilds every event.
with

profile_persons as (
    select
        identifier_value as profile_id,
        customer_key
    from {{ ref('int_identity__person_identifiers') }}
    where identifier_type = 'klaviyo_profile'
),
{%- if is_incremental() %}

profiles_to_rebuild as (
    {{ profiles_whose_person_changed('profile_persons') }}
),
{%- endif %}

klaviyo_events as (
    select * from {{ ref('stg_klaviyo__events') }}
    {%- if is_incremental() %}
    where _dlt_load_id > {{ last_load_built(this) }}
        or profile_id in (select profile_id from profiles_to_rebuild)
    {%- endif %}
),

final as (
    select
        profile_persons.customer_key,
        klaviyo_events.event_id,
        klaviyo_events.profile_id,
        klaviyo_events.metric_name,
        klaviyo_events.occurred_at,
        klaviyo_events.campaign_id,
        -- a message without an id is an email of its own
        coalesce(klaviyo_events.campaign_id, klaviyo_events.event_id) as message_id,
        klaviyo_events._dlt_load_id
    from profile_persons
    inner join klaviyo_events on profile_persons.profile_id = klaviyo_events.profile_id
)

select * from final
