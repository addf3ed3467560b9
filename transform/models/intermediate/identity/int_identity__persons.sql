-- One row per person: a component holding at least one record of a real customer relationship,
-- i.e. a (non-test) Shopify customer record, a Klaviyo profile, or an order that is not alone in
-- its component (it names a customer, email or phone, or a cookie bought it). Not persons: components of
-- only cookies, checkouts, emails or phones (anonymous visitors, cut identifiers) and a lone
-- order (an anonymous walk-in sale). A Shopify customer or order known only from GA4 (e.g. a
-- quarantined record) does not count.
with

components as (
    select * from {{ ref('int_identity__components') }}
),

identifiers as (
    select * from {{ ref('int_identity__identifiers') }}
),

nodes as (
    select
        components.component_id,
        components.component_size,
        components.identifier_type,
        identifiers.source_systems,
        identifiers.first_seen_at,
        (components.identifier_type in ('shopify_customer', 'shopify_order')
            and contains(identifiers.source_systems, 'shopify'))
        or components.identifier_type = 'klaviyo_profile' as is_person_record
    from components
    inner join identifiers on components.node_key = identifiers.node_key
),

per_component as (
    select
        component_id as person_component_id,
        min(component_size) as component_size,
        count(*) filter (where identifier_type = 'shopify_customer' and is_person_record) as shopify_customers,
        count(*) filter (where identifier_type = 'shopify_order' and is_person_record) as shopify_orders,
        count(*) filter (where identifier_type = 'shopify_checkout') as shopify_checkouts,
        count(*) filter (where identifier_type = 'klaviyo_profile') as klaviyo_profiles,
        count(*) filter (where identifier_type = 'email') as emails,
        count(*) filter (where identifier_type = 'phone') as phones,
        count(*) filter (where identifier_type = 'ga4_cookie') as ga4_cookies,
        min(first_seen_at) as first_seen_at,
        count(*) filter (
            where is_person_record and (identifier_type <> 'shopify_order' or component_size > 1)
        ) as person_records
    from nodes
    group by component_id
),

final as (
    select
        person_component_id,
        component_size,
        shopify_customers,
        shopify_orders,
        shopify_checkouts,
        klaviyo_profiles,
        emails,
        phones,
        ga4_cookies,
        first_seen_at,
        component_size > {{ identity_max_component_size() }} as is_oversized
    from per_component
    where person_records > 0
)

select * from final
