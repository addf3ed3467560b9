-- One row per undirected edge of the identity graph and the evidence for it: two identifiers a
-- source system names together (a customer's email, an order's customer, a cookie's login, …).
-- node_key_a < node_key_b; an edge seen in many records is one row (first_seen_at: the earliest).
-- Edges touching a left-out test identifier are dropped (see int_identity__test_identifiers). The
-- over-merge guard does not remove rows here: components skip the edges of cut identifiers.
with

observations as (
    select * from {{ ref('int_identity__observations') }}
    where linked_type is not null
),

test_identifiers as (
    select * from {{ ref('int_identity__test_identifiers') }}
),

keyed as (
    select
        {{ identity_node_key('node_type', 'node_value') }} as node_key,
        {{ identity_node_key('linked_type', 'linked_value') }} as linked_node_key,
        evidence,
        source_system,
        observed_at
    from observations
),

kept as (
    select keyed.*
    from keyed
    where keyed.node_key <> keyed.linked_node_key
        -- every other observed node is an identifier: a few hundred left out are cheaper to join
        -- than all the nodes (0.55 s against 1.1 s at size M)
        and keyed.node_key not in (select node_key from test_identifiers)
        and keyed.linked_node_key not in (select node_key from test_identifiers)
),

final as (
    select
        least(node_key, linked_node_key) as node_key_a,
        greatest(node_key, linked_node_key) as node_key_b,
        evidence,
        source_system,
        min(observed_at) as first_seen_at
    from kept
    group by all
)

select * from final
