-- One row per identifier the over-merge guard keeps out of the identity graph, and why:
--   test_account            a test record or what it touches (int_identity__test_identifiers);
--   shared_identifier       an email, phone or cookie linked to more distinct Shopify customers +
--                           Klaviyo profiles than identity_max_records_per_identifier;
--   conflicting_identifier  a phone or cookie whose records (customers, profiles, orders,
--                           checkouts) name more distinct emails than
--                           identity_max_emails_per_identifier: a household landline or a shared
--                           computer rather than one person (the email is the stronger identifier);
--   component_too_large     an email, phone or cookie linked to two or more customers + profiles
--                           inside a component (after the cuts above) of more nodes than
--                           identity_max_component_size.
-- degree counts the customers and profiles linked to the node directly or through an order or
-- checkout that names its customer. No raw email or phone here: nodes are named by md5(node_key).
-- The cut nodes stay in the graph as nodes; int_identity__components skips their edges. Degrees,
-- shared and conflicting identifiers and the components they leave are found in
-- int_identity__first_pass_components; test accounts here, from the raw observations.
{%- set record_types = "('shopify_customer', 'klaviyo_profile')" %}
with

observations as (
    select * from {{ ref('int_identity__observations') }}
),

test_identifiers as (
    select * from {{ ref('int_identity__test_identifiers') }}
),

first_pass as (
    select * from {{ ref('int_identity__first_pass_components') }}
),

-- test accounts -------------------------------------------------------------------------------

observed_nodes as (
    select
        {{ identity_node_key('node_type', 'node_value') }} as node_key,
        node_type as identifier_type,
        case when linked_type in {{ record_types }} then {{ identity_node_key('linked_type', 'linked_value') }} end
            as linked_record_key
    from observations
    union all
    select
        {{ identity_node_key('linked_type', 'linked_value') }} as node_key,
        linked_type as identifier_type,
        case when node_type in {{ record_types }} then {{ identity_node_key('node_type', 'node_value') }} end
            as linked_record_key
    from observations
    where linked_type is not null
),

test_account_identifiers as (
    select
        node_key,
        identifier_type,
        count(distinct linked_record_key) as degree
    from observed_nodes
    where node_key in (select node_key from test_identifiers)
    group by node_key, identifier_type
),

final as (
    select
        identifier_type,
        md5(node_key) as node_key_hash,
        'test_account' as reason,
        degree,
        cast(null as bigint) as component_size
    from test_account_identifiers
    union all
    -- shared and conflicting identifiers (a conflicting one may have no customer or profile)
    select
        identifier_type,
        md5(node_key) as node_key_hash,
        guard_reason as reason,
        coalesce(degree, 0) as degree,
        cast(null as bigint) as component_size
    from first_pass
    where guard_reason is not null
    union all
    select
        identifier_type,
        md5(node_key) as node_key_hash,
        'component_too_large' as reason,
        degree,
        component_size
    from first_pass
    where guard_reason is null
        and component_size > {{ identity_max_component_size() }}
        and degree >= 2
)

select * from final
