{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['profile_id', 'message_id'],
        on_schema_change='append_new_columns',
        post_hook="{{ forget_profiles_gone_from(ref('int_email__events'), 'profile_id') }}",
    )
}}
-- One row per marketing email delivered: a message (campaign) that reached a profile (a Received
-- Email event), and whether and when the profile first opened and clicked it. A click proves the
-- open when the tracking pixel was blocked, so a clicked message is opened too; repeated opens and
-- clicks count once, as Klaviyo's unique open and click rates do.
-- Incremental (decision 34): a run rebuilds, from all their events, the messages with an event
-- loaded since the last build and every message of a profile whose person changed; the messages
-- of a profile without events any more are deleted (post-hook).
with
{%- if is_incremental() %}

-- (profile, message) pairs with an event dlt loaded since this model's last build
new_pairs as (
    select distinct profile_id, message_id
    from {{ ref('int_email__events') }}
    where _dlt_load_id > {{ last_load_built(this) }}
),

recipients as (
    select distinct profile_id, customer_key
    from {{ ref('int_email__events') }}
    where metric_name = 'Received Email'
),

changed_profiles as (
    {{ profiles_whose_person_changed('recipients') }}
),
{%- endif %}

events as (
    select * from {{ ref('int_email__events') }}
    {%- if is_incremental() %}
    where profile_id in (select profile_id from changed_profiles)
        or (profile_id, message_id) in (select profile_id, message_id from new_pairs)
    {%- endif %}
),

received as (
    select
        customer_key,
        profile_id,
        message_id,
        any_value(campaign_id) as campaign_id,
        min(occurred_at) as received_at,
        max(_dlt_load_id) as _dlt_load_id
    from events
    where metric_name = 'Received Email'
    group by customer_key, profile_id, message_id
),

engaged as (
    select
        profile_id,
        message_id,
        min(occurred_at) as first_opened_at,
        min(occurred_at) filter (where metric_name = 'Clicked Email') as first_clicked_at,
        max(_dlt_load_id) as _dlt_load_id
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
        engaged.first_clicked_at is not null as is_clicked,
        -- the newest load of the message's events (what the next incremental run compares)
        greatest(received._dlt_load_id, engaged._dlt_load_id) as _dlt_load_id
    from received
    left join engaged
        on received.profile_id = engaged.profile_id
        and received.message_id = engaged.message_id
)

select * from final
