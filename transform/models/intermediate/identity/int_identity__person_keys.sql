{{
    config(
        materialized='incremental',
        unique_key='node_key_hash',
        incremental_strategy='delete+insert',
        full_refresh=false,
        on_schema_change='fail',
    )
}}
-- One row per identifier node ever part of a person: the person's customer_key, kept across runs.
-- This table is the memory of the keys: it is never rebuilt (full_refresh=false), each run only
-- rewrites the rows of the nodes it sees. A person keeps their key as long as any of their nodes
-- carries it:
--   * a new person (no node had a key) gets a new key, random per run (md5 of the dbt invocation
--     and the component), so a key reveals nothing about the person;
--   * a merge (a component whose nodes carried several keys) keeps the oldest key; the others are
--     recorded in int_identity__key_changes;
--   * a split (one key's nodes now in several components) leaves the key with the component that
--     holds most of its nodes; the other parts get new keys, also recorded.
-- Nodes are stored as md5(node_key), never as the email or phone itself.
with

components as (
    select * from {{ ref('int_identity__components') }}
),

persons as (
    select * from {{ ref('int_identity__persons') }}
),

person_nodes as (
    select
        md5(components.node_key) as node_key_hash,
        components.component_id
    from components
    inner join persons on components.component_id = persons.person_component_id
),

previous as (
    {% if is_incremental() %}
    select node_key_hash, customer_key, key_created_at, key_changed_at from {{ this }}
    {% else %}
    select
        null::varchar as node_key_hash,
        null::varchar as customer_key,
        null::timestamp as key_created_at,
        null::timestamp as key_changed_at
    where false
    {% endif %}
),

-- the keys each component's nodes carried before this run
inherited_keys as (
    select
        person_nodes.component_id,
        previous.customer_key,
        min(previous.key_created_at) as key_created_at,
        count(*) as nodes
    from person_nodes
    inner join previous on person_nodes.node_key_hash = previous.node_key_hash
    group by all
),

-- a split: a key stays with the component holding most of its nodes
owned_keys as (
    select * from inherited_keys
    qualify row_number() over (partition by customer_key order by nodes desc, component_id) = 1
),

-- a merge: the component keeps the oldest of its keys
kept_keys as (
    select * from owned_keys
    qualify row_number() over (partition by component_id order by key_created_at, customer_key) = 1
),

component_keys as (
    select
        persons.person_component_id as component_id,
        coalesce(kept_keys.customer_key, {{ new_customer_key('persons.person_component_id') }}) as customer_key,
        coalesce(kept_keys.key_created_at, {{ run_started_at_utc() }}) as key_created_at
    from persons
    left join kept_keys on persons.person_component_id = kept_keys.component_id
),

final as (
    select
        person_nodes.node_key_hash,
        component_keys.customer_key,
        component_keys.key_created_at,
        previous.customer_key as previous_customer_key,
        case
            when previous.customer_key <> component_keys.customer_key then {{ run_started_at_utc() }}
            else previous.key_changed_at
        end as key_changed_at,
        {{ run_started_at_utc() }} as seen_at
    from person_nodes
    inner join component_keys on person_nodes.component_id = component_keys.component_id
    left join previous on person_nodes.node_key_hash = previous.node_key_hash
)

select * from final
