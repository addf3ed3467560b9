-- One row per identifier node: the connected component (the person candidate) it belongs to.
-- Components are computed over int_identity__edges without the edges of cut identifiers
-- (int_identity__cut_identifiers), so a cut email, phone or cookie is a component of its own.
-- component_id is md5 of the smallest node_key in the component: deterministic for one state of
-- the graph, but it changes when a smaller node joins or a component splits (keys that stay
-- stable across runs are the next step's job).
with

identifiers as (
    select * from {{ ref('int_identity__identifiers') }}
),

edges as (
    select * from {{ ref('int_identity__edges') }}
),

cut_identifiers as (
    select * from {{ ref('int_identity__cut_identifiers') }}
),

numbered_nodes as (
    select
        node_key,
        identifier_type,
        md5(node_key) in (select node_key_hash from cut_identifiers) as is_cut,
        row_number() over (order by node_key) as node_id
    from identifiers
),

kept_edges as (
    select
        nodes_a.node_id as node_id_a,
        nodes_b.node_id as node_id_b
    from edges
    inner join numbered_nodes as nodes_a on edges.node_key_a = nodes_a.node_key
    inner join numbered_nodes as nodes_b on edges.node_key_b = nodes_b.node_key
    where not nodes_a.is_cut
        and not nodes_b.is_cut
),

labels as (
    {{ identity_connected_components('numbered_nodes', 'kept_edges') }}
),

labelled_nodes as (
    select
        numbered_nodes.node_key,
        numbered_nodes.identifier_type,
        numbered_nodes.is_cut,
        anchors.node_key as anchor_node_key
    from numbered_nodes
    inner join labels on numbered_nodes.node_id = labels.node_id
    -- the label is the smallest node_id, and node ids follow node_key order
    inner join numbered_nodes as anchors on labels.label = anchors.node_id
),

final as (
    select
        node_key,
        identifier_type,
        md5(anchor_node_key) as component_id,
        count(*) over (partition by anchor_node_key) as component_size,
        is_cut
    from labelled_nodes
)

select * from final
