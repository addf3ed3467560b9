-- One row per identifier node: what the over-merge guard finds at the node, and the connected
-- component it is in once the guard has cut shared and conflicting identifiers (its first pass).
--   degree        the Shopify customers + Klaviyo profiles linked to the node directly or through
--                 an order or checkout that names its customer (null: none);
--   guard_reason  shared_identifier or conflicting_identifier (see int_identity__cut_identifiers),
--                 null for a node the first pass keeps;
--   component_id  md5 of the smallest node_key of its component over int_identity__edges without
--                 the edges of those nodes; component_size its nodes.
-- The graph's components are computed here once: int_identity__cut_identifiers cuts, besides, the
-- identifiers of components too large, and int_identity__components computes only those again.
{%- set soft_types = "('email', 'phone', 'ga4_cookie')" %}
{%- set record_types = "('shopify_customer', 'klaviyo_profile')" %}
with

identifiers as (
    select * from {{ ref('int_identity__identifiers') }}
),

edges as (
    select * from {{ ref('int_identity__edges') }}
),

directed_edges as (
    select
        node_key_a as node_key,
        split_part(node_key_a, ':', 1) as node_type,
        node_key_b as neighbour_key,
        split_part(node_key_b, ':', 1) as neighbour_type
    from edges
    union all
    select
        node_key_b as node_key,
        split_part(node_key_b, ':', 1) as node_type,
        node_key_a as neighbour_key,
        split_part(node_key_a, ':', 1) as neighbour_type
    from edges
),

-- customers and profiles behind each email, phone and cookie ----------------------------------

records_behind_identifiers as (
    select
        node_key,
        neighbour_key as record_key
    from directed_edges
    where node_type in {{ soft_types }}
        and neighbour_type in {{ record_types }}
    union
    select
        to_record.node_key,
        to_customer.neighbour_key as record_key
    from directed_edges as to_record
    inner join directed_edges as to_customer on to_record.neighbour_key = to_customer.node_key
    where to_record.node_type in {{ soft_types }}
        and to_record.neighbour_type in ('shopify_order', 'shopify_checkout')
        and to_customer.neighbour_type = 'shopify_customer'
),

degrees as (
    select
        node_key,
        count(*) as degree
    from records_behind_identifiers
    group by node_key
),

shared_identifiers as (
    select node_key
    from degrees
    where degree > {{ identity_max_records_per_identifier() }}
),

-- phones and cookies whose records name different emails --------------------------------------

emails_behind_identifiers as (
    select
        to_record.node_key,
        count(distinct to_email.neighbour_key) as emails
    from directed_edges as to_record
    inner join directed_edges as to_email on to_record.neighbour_key = to_email.node_key
    where to_record.node_type in ('phone', 'ga4_cookie')
        and to_record.neighbour_type in (
            'shopify_customer', 'klaviyo_profile', 'shopify_order', 'shopify_checkout'
        )
        and to_email.neighbour_type = 'email'
    group by to_record.node_key
),

guarded_identifiers as (
    select
        node_key,
        'shared_identifier' as guard_reason
    from shared_identifiers
    union all
    select
        node_key,
        'conflicting_identifier' as guard_reason
    from emails_behind_identifiers
    where emails > {{ identity_max_emails_per_identifier() }}
        and node_key not in (select node_key from shared_identifiers)
),

-- components once those are cut ---------------------------------------------------------------

nodes as (
    select
        node_key,
        identifier_type,
        node_key in (select node_key from guarded_identifiers) as skips_edges
    from identifiers
),

components as (
    {{ identity_components_of_nodes('nodes', 'edges') }}
),

final as (
    select
        nodes.node_key,
        nodes.identifier_type,
        degrees.degree,
        guarded_identifiers.guard_reason,
        components.component_id,
        components.component_size
    from nodes
    inner join components on nodes.node_key = components.node_key
    left join degrees on nodes.node_key = degrees.node_key
    left join guarded_identifiers on nodes.node_key = guarded_identifiers.node_key
)

select * from final
