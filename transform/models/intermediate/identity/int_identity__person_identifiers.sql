-- One row per identifier of a person, with the person's customer_key: the join table every
-- customer-level model uses to attribute Shopify customers, orders, checkouts, Klaviyo profiles
-- and GA4 cookies to a person.
with

components as (
    select * from {{ ref('int_identity__components') }}
),

identifiers as (
    select * from {{ ref('int_identity__identifiers') }}
),

person_keys as (
    select * from {{ ref('int_identity__person_keys') }}
),

final as (
    select
        person_keys.customer_key,
        identifiers.identifier_type,
        identifiers.identifier_value
    from components
    inner join identifiers on components.node_key = identifiers.node_key
    inner join person_keys
        on md5(components.node_key) = person_keys.node_key_hash
        -- only the nodes of the latest run; older rows are the memory of nodes no longer seen
        and person_keys.seen_at = (select max(seen_at) from person_keys)
)

select * from final
