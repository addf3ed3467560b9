{{
    config(
        materialized='incremental',
        full_refresh=false,
        on_schema_change='fail',
    )
}}
-- One row per customer_key that stopped being a person's key, appended by the run that changed it:
-- merged (its person joined another, older key; BI tools can re-point the old key to the new one)
-- or split (part of its person turned out to be someone else and got the new key).
with

person_keys as (
    select * from {{ ref('int_identity__person_keys') }}
),

changed as (
    select distinct
        previous_customer_key,
        customer_key,
        key_changed_at
    from person_keys
    where key_changed_at = seen_at
    {% if is_incremental() %}
        and key_changed_at > (select coalesce(max(changed_at), '-infinity'::timestamp) from {{ this }})
    {% endif %}
),

current_keys as (
    select distinct customer_key
    from person_keys
    where seen_at = (select max(seen_at) from person_keys)
),

final as (
    select
        changed.previous_customer_key as old_customer_key,
        changed.customer_key as new_customer_key,
        case
            when changed.previous_customer_key in (select customer_key from current_keys) then 'split'
            else 'merged'
        end as change_type,
        changed.key_changed_at as changed_at
    from changed
)

select * from final
