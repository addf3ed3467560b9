-- One row per identifier node: the connected component (the person candidate) it belongs to.
-- Components are computed over int_identity__edges without the edges of cut identifiers
-- (int_identity__cut_identifiers), so a cut email, phone or cookie is a component of its own.
-- The guard's first pass (int_identity__first_pass_components) already left out the edges of
-- shared and conflicting identifiers: its components are final unless the guard then cut nodes of
-- a too large one, and only those are computed again here (none at size M).
-- component_id is md5 of the smallest node_key in the component: deterministic for one state of
-- the graph, but it changes when a smaller node joins or a component splits (keys that stay
-- stable across runs are the next step's job).
with

first_pass as (
    select * from {{ ref('int_identity__first_pass_components') }}
),

edges as (
    select * from {{ ref('int_identity__edges') }}
),

cut_identifiers as (
    select * from {{ ref('int_identity__cut_identifiers') }}
),

nodes as (
    select
        node_key,
        identifier_type,
        component_id as first_pass_component_id,
        component_size as first_pass_component_size,
        md5(node_key) in (select node_key_hash from cut_identifiers) as is_cut
    from first_pass
),

-- first-pass components with a node cut after the first pass (a node the first pass cut is alone)
split_components as (
    select distinct first_pass_component_id
    from nodes
    where is_cut
        and first_pass_component_size > 1
),

nodes_to_split as (
    select
        node_key,
        is_cut as skips_edges
    from nodes
    where first_pass_component_id in (select first_pass_component_id from split_components)
),

split_nodes as (
    {{ identity_components_of_nodes('nodes_to_split', 'edges') }}
),

final as (
    select
        nodes.node_key,
        nodes.identifier_type,
        coalesce(split_nodes.component_id, nodes.first_pass_component_id) as component_id,
        coalesce(split_nodes.component_size, nodes.first_pass_component_size) as component_size,
        nodes.is_cut
    from nodes
    left join split_nodes on nodes.node_key = split_nodes.node_key
)

select * from final
