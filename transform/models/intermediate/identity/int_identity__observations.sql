-- One row per thing a source system says about identity: a record exists (linked_* null), or a
-- record names another identifier (an edge of the identity graph, with the evidence for it).
-- Identifiers are normalised here (macros/identity.sql): emails trimmed and lower-cased, phones
-- in E.164, GA4 user_id read as a Shopify customer id, GA4 transaction_id as a Shopify order id,
-- and a GA4 page under /checkouts/<token>/ as a visit to the Shopify checkout with that token.
-- Test records (Shopify customers tagged test, test orders) are flagged, not dropped:
-- int_identity__identifiers excludes them and what they touch.
with

customers as (
    select * from {{ ref('stg_shopify__customers') }}
),

orders as (
    select * from {{ ref('stg_shopify__orders') }}
),

checkouts as (
    select * from {{ ref('stg_shopify__checkouts') }}
),

shopify_contacts as (
    select * from {{ ref('int_identity__shopify_contacts') }}
),

profiles as (
    select * from {{ ref('stg_klaviyo__profiles') }}
),

-- Shopify customers ---------------------------------------------------------------------------

customer_nodes as (
    select
        customer_id::varchar as customer_value,
        {{ identity_email('email') }} as email_value,
        {{ identity_phone('phone') }} as phone_value,
        created_at,
        is_test_customer
    from customers
),

customer_observations as (
    select
        'shopify_customer' as node_type,
        customer_value as node_value,
        linked.linked_type,
        linked.linked_value,
        linked.evidence,
        'shopify' as source_system,
        created_at as observed_at,
        is_test_customer as is_test_record
    from customer_nodes,
        lateral (
            select * from (values
                (null, null, 'shopify_customer_record'),
                ('email', email_value, 'shopify_customer_email'),
                ('phone', phone_value, 'shopify_customer_phone')
            ) as candidates (linked_type, linked_value, evidence)
            where linked_type is null or linked_value is not null
        ) as linked
),

-- Shopify orders ------------------------------------------------------------------------------

order_nodes as (
    select
        orders.order_id::varchar as order_value,
        orders.customer_id::varchar as customer_value,
        {{ identity_email('orders.email') }} as email_value,
        {{ identity_phone('order_contacts.phone') }} as phone_value,
        orders.created_at,
        orders.is_test or coalesce(customers.is_test_customer, false) as is_test_order
    from orders
    left join customers on orders.customer_id = customers.customer_id
    left join shopify_contacts as order_contacts
        on orders.order_id = order_contacts.record_id
        and order_contacts.record_type = 'shopify_order'
),

order_observations as (
    select
        'shopify_order' as node_type,
        order_value as node_value,
        linked.linked_type,
        linked.linked_value,
        linked.evidence,
        'shopify' as source_system,
        created_at as observed_at,
        is_test_order as is_test_record
    from order_nodes,
        lateral (
            select * from (values
                (null, null, 'shopify_order_record'),
                ('shopify_customer', customer_value, 'order_customer'),
                ('email', email_value, 'order_email'),
                ('phone', phone_value, 'order_phone')
            ) as candidates (linked_type, linked_value, evidence)
            where linked_type is null or linked_value is not null
        ) as linked
),

-- Shopify abandoned checkouts -----------------------------------------------------------------

checkout_nodes as (
    select
        checkouts.checkout_id::varchar as checkout_value,
        checkouts.customer_id::varchar as customer_value,
        {{ identity_email('checkout_contacts.email') }} as email_value,
        {{ identity_phone('checkout_contacts.phone') }} as phone_value,
        checkouts.created_at
    from checkouts
    left join shopify_contacts as checkout_contacts
        on checkouts.checkout_id = checkout_contacts.record_id
        and checkout_contacts.record_type = 'shopify_checkout'
),

checkout_observations as (
    select
        'shopify_checkout' as node_type,
        checkout_value as node_value,
        linked.linked_type,
        linked.linked_value,
        linked.evidence,
        'shopify' as source_system,
        created_at as observed_at,
        false as is_test_record
    from checkout_nodes,
        lateral (
            select * from (values
                (null, null, 'shopify_checkout_record'),
                ('shopify_customer', customer_value, 'checkout_customer'),
                ('email', email_value, 'checkout_email'),
                ('phone', phone_value, 'checkout_phone')
            ) as candidates (linked_type, linked_value, evidence)
            where linked_type is null or linked_value is not null
        ) as linked
),

-- Klaviyo profiles ----------------------------------------------------------------------------

profile_nodes as (
    select
        profile_id as profile_value,
        {{ identity_email('email') }} as email_value,
        {{ identity_phone('phone') }} as phone_value,
        created_at
    from profiles
),

profile_observations as (
    select
        'klaviyo_profile' as node_type,
        profile_value as node_value,
        linked.linked_type,
        linked.linked_value,
        linked.evidence,
        'klaviyo' as source_system,
        created_at as observed_at,
        false as is_test_record
    from profile_nodes,
        lateral (
            select * from (values
                (null, null, 'klaviyo_profile_record'),
                ('email', email_value, 'klaviyo_profile_email'),
                ('phone', phone_value, 'klaviyo_profile_phone')
            ) as candidates (linked_type, linked_value, evidence)
            where linked_type is null or linked_value is not null
        ) as linked
),

-- GA4 cookies (from int_ga4__identities, a row per day and identifier combination) ---------

ga4_identities as (
    select
        trim(user_pseudo_id) as cookie_value,
        nullif(trim(user_id), '') as customer_value,
        nullif(trim(transaction_id), '') as order_value,
        checkout_token,
        first_event_at
    from {{ ref('int_ga4__identities') }}
),

checkout_tokens as (
    select
        checkout_token,
        record_id::varchar as checkout_value
    from shopify_contacts
    where record_type = 'shopify_checkout'
        and checkout_token is not null
),

-- each kind of link on its own rows, so one aggregation below dedupes them across days (one
-- pass instead of two at size M: 1.8 s against 2.2-2.6 s for the model, decision 35)
ga4_links as (
    select
        cookie_value,
        null as linked_type,
        null as linked_value,
        'ga4_cookie_record' as evidence,
        first_event_at
    from ga4_identities
    union all
    -- user_id is the Shopify customer id once the visitor logged in
    select cookie_value, 'shopify_customer', customer_value, 'ga4_login', first_event_at
    from ga4_identities
    where customer_value is not null
    union all
    -- a purchase's transaction_id is the Shopify order id
    select cookie_value, 'shopify_order', order_value, 'ga4_purchase', first_event_at
    from ga4_identities
    where order_value is not null
    union all
    -- the browser went through that (later abandoned) checkout's pages
    select
        ga4_identities.cookie_value,
        'shopify_checkout',
        checkout_tokens.checkout_value,
        'ga4_checkout',
        ga4_identities.first_event_at
    from ga4_identities
    inner join checkout_tokens on ga4_identities.checkout_token = checkout_tokens.checkout_token
),

ga4_observations as (
    select
        'ga4_cookie' as node_type,
        cookie_value as node_value,
        linked_type,
        linked_value,
        evidence,
        'ga4' as source_system,
        min(first_event_at) as observed_at,
        false as is_test_record
    from ga4_links
    group by cookie_value, linked_type, linked_value, evidence
),

final as (
    select * from customer_observations
    union all
    select * from order_observations
    union all
    select * from checkout_observations
    union all
    select * from profile_observations
    union all
    select * from ga4_observations
)

select * from final
