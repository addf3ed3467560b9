-- One row per identifier the identity graph leaves out as the shop's test account or what it
-- touches:
--   1. test records: Shopify customers tagged test, test orders and orders of test customers;
--   2. every node one observation away from a test customer (its emails, phones, checkouts, the
--      cookies that logged in as it), except other Shopify customers, and the cookies that
--      bought a test order (a real account that placed a test order keeps its email and phone);
--   3. Klaviyo profiles that carry a left-out email or phone (the test account's profile).
-- A real customer who shares an email or phone with a test account loses it as a link.
-- int_identity__identifiers and int_identity__edges leave these out; int_identity__cut_identifiers
-- lists them (test_account). A few hundred rows: joining them is cheaper than joining every node.
with

observations as (
    select * from {{ ref('int_identity__observations') }}
),

test_records as (
    select distinct
        node_type as identifier_type,
        node_value as identifier_value
    from observations
    where is_test_record
),

touched_by_test_customers as (
    select
        observations.linked_type as identifier_type,
        observations.linked_value as identifier_value
    from observations
    inner join test_records
        on observations.node_type = test_records.identifier_type
        and observations.node_value = test_records.identifier_value
    where test_records.identifier_type = 'shopify_customer'
        and observations.linked_type <> 'shopify_customer'
    union
    select
        observations.node_type as identifier_type,
        observations.node_value as identifier_value
    from observations
    inner join test_records
        on observations.linked_type = test_records.identifier_type
        and observations.linked_value = test_records.identifier_value
    where test_records.identifier_type = 'shopify_customer'
        and observations.node_type <> 'shopify_customer'
),

buyers_of_test_orders as (
    select
        observations.node_type as identifier_type,
        observations.node_value as identifier_value
    from observations
    inner join test_records
        on observations.linked_type = test_records.identifier_type
        and observations.linked_value = test_records.identifier_value
    where test_records.identifier_type = 'shopify_order'
        and observations.evidence = 'ga4_purchase'
),

test_identifiers as (
    select * from test_records
    union
    select * from touched_by_test_customers
    union
    select * from buyers_of_test_orders
),

test_profiles as (
    select distinct
        observations.node_type as identifier_type,
        observations.node_value as identifier_value
    from observations
    inner join test_identifiers
        on observations.linked_type = test_identifiers.identifier_type
        and observations.linked_value = test_identifiers.identifier_value
    where observations.node_type = 'klaviyo_profile'
),

left_out as (
    select * from test_identifiers
    union
    select * from test_profiles
),

final as (
    select
        identifier_type,
        identifier_value,
        {{ identity_node_key('identifier_type', 'identifier_value') }} as node_key
    from left_out
)

select * from final
