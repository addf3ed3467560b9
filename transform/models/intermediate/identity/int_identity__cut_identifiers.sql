-- One row per identifier the over-merge guard keeps out of the identity graph, and why:
--   test_account            a test record or what it touches (see int_identity__identifiers);
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
-- The cut nodes stay in the graph as nodes; int_identity__components skips their edges.
{%- set soft_types = "('email', 'phone', 'ga4_cookie')" %}
{%- set record_types = "('shopify_customer', 'klaviyo_profile')" %}
with

observations as (
    select * from {{ ref('int_identity__observations') }}
),

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
    select
        node_key,
        degree
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

conflicting_identifiers as (
    select
        emails_behind_identifiers.node_key,
        coalesce(degrees.degree, 0) as degree
    from emails_behind_identifiers
    left join degrees on emails_behind_identifiers.node_key = degrees.node_key
    where emails_behind_identifiers.emails > {{ identity_max_emails_per_identifier() }}
        and emails_behind_identifiers.node_key not in (select node_key from shared_identifiers)
),

guarded_identifiers as (
    select node_key from shared_identifiers
    union all
    select node_key from conflicting_identifiers
),

-- components once those are cut (first pass) ---------------------------------------------------

numbered_nodes as (
    select
        node_key,
        row_number() over (order by node_key) as node_id
    from identifiers
),

first_pass_edges as (
    select
        nodes_a.node_id as node_id_a,
        nodes_b.node_id as node_id_b
    from edges
    inner join numbered_nodes as nodes_a on edges.node_key_a = nodes_a.node_key
    inner join numbered_nodes as nodes_b on edges.node_key_b = nodes_b.node_key
    where edges.node_key_a not in (select node_key from guarded_identifiers)
        and edges.node_key_b not in (select node_key from guarded_identifiers)
),

first_pass_labels as (
    {{ identity_connected_components('numbered_nodes', 'first_pass_edges') }}
),

first_pass_sizes as (
    select
        label,
        count(*) as component_size
    from first_pass_labels
    group by label
),

too_large_component_identifiers as (
    select
        numbered_nodes.node_key,
        degrees.degree,
        first_pass_sizes.component_size
    from first_pass_sizes
    inner join first_pass_labels on first_pass_sizes.label = first_pass_labels.label
    inner join numbered_nodes on first_pass_labels.node_id = numbered_nodes.node_id
    inner join degrees on numbered_nodes.node_key = degrees.node_key
    where first_pass_sizes.component_size > {{ identity_max_component_size() }}
        and degrees.degree >= 2
        and numbered_nodes.node_key not in (select node_key from guarded_identifiers)
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
    where node_key not in (select node_key from identifiers)
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
    select
        split_part(node_key, ':', 1) as identifier_type,
        md5(node_key) as node_key_hash,
        'shared_identifier' as reason,
        degree,
        cast(null as bigint) as component_size
    from shared_identifiers
    union all
    select
        split_part(node_key, ':', 1) as identifier_type,
        md5(node_key) as node_key_hash,
        'conflicting_identifier' as reason,
        degree,
        cast(null as bigint) as component_size
    from conflicting_identifiers
    union all
    select
        split_part(node_key, ':', 1) as identifier_type,
        md5(node_key) as node_key_hash,
        'component_too_large' as reason,
        degree,
        component_size
    from too_large_component_identifiers
)

select * from final
