-- One row per person with at least one order (customer_key from identity resolution): what and
-- how they buy, their RFM scores and segment, and their lifecycle stage. Cancelled orders keep
-- the person in the table (net revenue zero) but are not counted anywhere else. Scores, segment
-- and lifecycle rules are the macros in macros/rfm.sql.
with

orders as (
    select * from {{ ref('int_customer__order_facts') }}
    where customer_key is not null
),

counted_orders as (
    select * from orders
    where is_counted
),

order_lines as (
    select * from {{ ref('stg_shopify__order_lines') }}
),

products as (
    select * from {{ ref('stg_shopify__products') }}
),

payment_gateways as (
    select * from {{ ref('stg_shopify__order_payment_gateways') }}
),

-- "now" as a shop-local calendar date: days are counted between local dates, like churn in
-- the sandbox's ground truth
as_of as (
    select ({{ to_shop_time(as_of()) }})::date as as_of_local_date
),

totals as (
    select
        customer_key,
        count(*) filter (where is_counted) as orders,
        count(*) filter (where is_cancelled) as cancelled_orders,
        coalesce(sum(items) filter (where is_counted), 0)::bigint as items,
        coalesce(sum(gross_revenue) filter (where is_counted), 0)::decimal(38, 2) as gross_revenue,
        coalesce(sum(refunded) filter (where is_counted), 0)::decimal(38, 2) as refunded,
        -- every order: a cancelled one counts zero, so this equals the sum over fct_orders
        coalesce(sum(net_revenue), 0)::decimal(38, 2) as net_revenue,
        min(ordered_at) filter (where is_counted) as first_order_at,
        max(ordered_at) filter (where is_counted) as last_order_at,
        min(order_local_date) filter (where is_counted) as first_order_local_date,
        max(order_local_date) filter (where is_counted) as last_order_local_date,
        count(*) filter (where is_counted and sales_channel = 'online') as online_orders,
        count(*) filter (where is_counted and sales_channel = 'in_store') as in_store_orders,
        count(*) filter (where is_counted and has_discount) as discounted_orders,
        max(ordered_at) filter (where is_counted and is_reactivation) as last_reactivated_at,
        max(order_local_date) filter (where is_counted and is_reactivation) as last_reactivated_local_date
    from orders
    group by customer_key
),

-- the weekday with most orders; a tie goes to the earliest in the week (Monday first)
weekdays as (
    select
        customer_key,
        order_weekday,
        any_value(order_weekday_name) as order_weekday_name
    from counted_orders
    where order_weekday is not null
    group by customer_key, order_weekday
    qualify row_number() over (partition by customer_key order by count(*) desc, order_weekday) = 1
),

-- the hour of day with most orders; a tie goes to the earliest hour
hours as (
    select
        customer_key,
        order_hour
    from counted_orders
    where order_hour is not null
    group by customer_key, order_hour
    qualify row_number() over (partition by customer_key order by count(*) desc, order_hour) = 1
),

bought_items as (
    select
        counted_orders.customer_key,
        order_lines.product_id,
        -- the current catalogue title; the title on the line when the product is gone
        coalesce(products.product_title, order_lines.product_title) as product_title,
        products.category,
        order_lines.quantity
    from counted_orders
    inner join order_lines on counted_orders.order_id = order_lines.order_id
    left join products on order_lines.product_id = products.product_id
),

-- most items bought; a tie goes to the alphabetically first. Lines of products no longer in
-- the catalogue have no category and do not count for it.
categories as (
    select
        customer_key,
        category
    from bought_items
    where category is not null
    group by customer_key, category
    qualify row_number() over (partition by customer_key order by sum(quantity) desc, category) = 1
),

favourite_products as (
    select
        customer_key,
        product_title
    from bought_items
    where product_title is not null
    group by customer_key, product_title
    qualify row_number() over (partition by customer_key order by sum(quantity) desc, product_title) = 1
),

-- the gateway of most orders (a split payment counts for each of its gateways); a tie goes to
-- the alphabetically first
payment_methods as (
    select
        counted_orders.customer_key,
        payment_gateways.payment_gateway
    from counted_orders
    inner join payment_gateways on counted_orders.order_id = payment_gateways.order_id
    where payment_gateways.payment_gateway is not null
    group by counted_orders.customer_key, payment_gateways.payment_gateway
    qualify row_number() over (
        partition by counted_orders.customer_key
        order by count(distinct counted_orders.order_id) desc, payment_gateways.payment_gateway
    ) = 1
),

recency as (
    select
        totals.*,
        (as_of.as_of_local_date - totals.first_order_local_date)::integer as days_since_first_order,
        (as_of.as_of_local_date - totals.last_order_local_date)::integer as days_since_last_order,
        (as_of.as_of_local_date - totals.last_reactivated_local_date)::integer as days_since_last_reactivation,
        {{ churn_threshold_days('totals.first_order_local_date', 'totals.last_order_local_date', 'totals.orders') }}
            as churn_threshold_days
    from totals
    cross join as_of
),

scored as (
    select
        *,
        ({{ rfm_recency_score('days_since_last_order') }})::integer as recency_score,
        ({{ rfm_frequency_score('orders') }})::integer as frequency_score,
        (case when orders > 0 then {{ rfm_monetary_score('net_revenue') }} end)::integer as monetary_score
    from recency
),

final as (
    select
        scored.customer_key,
        scored.orders,
        scored.cancelled_orders,
        scored.items,
        scored.gross_revenue,
        scored.refunded,
        scored.net_revenue,
        round(scored.net_revenue / nullif(scored.orders, 0), 2)::decimal(38, 2) as average_order_value,
        scored.first_order_at,
        scored.last_order_at,
        scored.days_since_first_order,
        scored.days_since_last_order,
        case
            when scored.orders > 1
                then (scored.last_order_local_date - scored.first_order_local_date)::double / (scored.orders - 1)
        end as mean_days_between_orders,
        scored.online_orders::double / nullif(scored.orders, 0) as online_order_share,
        scored.in_store_orders::double / nullif(scored.orders, 0) as in_store_order_share,
        scored.discounted_orders::double / nullif(scored.orders, 0) as discount_order_share,
        weekdays.order_weekday_name as preferred_weekday,
        hours.order_hour as preferred_hour,
        categories.category as favourite_category,
        favourite_products.product_title as favourite_product,
        payment_methods.payment_gateway as preferred_payment_method,
        scored.recency_score,
        scored.frequency_score,
        scored.monetary_score,
        scored.recency_score::varchar || scored.frequency_score::varchar || scored.monetary_score::varchar
            as rfm_score,
        {{ rfm_segment('scored.recency_score', 'scored.frequency_score', 'scored.monetary_score') }} as rfm_segment,
        scored.churn_threshold_days,
        case when scored.orders > 0 then scored.days_since_last_order > scored.churn_threshold_days end
            as is_churned,
        scored.last_reactivated_at,
        {{ lifecycle_stage(
            'scored.days_since_first_order',
            'scored.days_since_last_order',
            'scored.churn_threshold_days',
            'scored.days_since_last_reactivation'
        ) }} as lifecycle_stage
    from scored
    left join weekdays on scored.customer_key = weekdays.customer_key
    left join hours on scored.customer_key = hours.customer_key
    left join categories on scored.customer_key = categories.customer_key
    left join favourite_products on scored.customer_key = favourite_products.customer_key
    left join payment_methods on scored.customer_key = payment_methods.customer_key
)

select * from final
