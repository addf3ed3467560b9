-- One row per person × shop-local calendar month, from the month of their first counted order to
-- the as-of month: where the person stood at the start of the month (RFM scores and segment, churn
-- threshold, churned or not) and what happened during it (orders, net revenue, first order,
-- reactivation, churn). The churn marts count these rows; the rules are the macros in
-- macros/rfm.sql, applied to the orders before the month as customer_360 applies them to all.
with

counted_orders as (
    select * from {{ ref('int_customer__order_facts') }}
    where is_counted
        and customer_key is not null
),

as_of as (
    select
        ({{ to_shop_time(as_of()) }})::date as as_of_local_date,
        {{ dbt.date_trunc('month', '(' ~ to_shop_time(as_of()) ~ ')::date') }}::date as as_of_month
),

persons as (
    select
        customer_key,
        min(order_local_date) as first_order_local_date
    from counted_orders
    group by customer_key
),

-- after each counted order the person churns on the day their days since it reach T (T from the
-- orders until then), unless they order again first: that next order is then a reactivation
-- (order_facts' is_reactivation, the same rule). A crossing only counts once it lies before the
-- as-of date, so the open crossings are exactly the persons customer_360 calls churned.
churn_crossings as (
    select
        counted_orders.customer_key,
        counted_orders.order_local_date
            + floor({{ churn_threshold_days(
                'persons.first_order_local_date',
                'counted_orders.order_local_date',
                'counted_orders.counted_order_number'
            ) }})::integer as churned_on,
        lead(counted_orders.is_reactivation) over (
            partition by counted_orders.customer_key
            order by counted_orders.counted_order_number
        ) as next_order_is_reactivation
    from counted_orders
    inner join persons on counted_orders.customer_key = persons.customer_key
),

churn_events as (
    select
        churn_crossings.customer_key,
        churn_crossings.churned_on
    from churn_crossings
    cross join as_of
    where coalesce(churn_crossings.next_order_is_reactivation, true)
        and churn_crossings.churned_on < as_of.as_of_local_date
),

monthly_orders as (
    select
        customer_key,
        {{ dbt.date_trunc('month', 'order_local_date') }}::date as month,
        count(*) as orders,
        sum(net_revenue) as net_revenue,
        max(order_local_date) as last_order_local_date,
        bool_or(is_reactivation) as has_reactivation
    from counted_orders
    group by customer_key, month
),

-- at most one crossing per person and month: after a reactivation the next crossing is T ≥ 30
-- days later; max() keeps the grain even so
monthly_churns as (
    select
        customer_key,
        {{ dbt.date_trunc('month', 'churned_on') }}::date as month,
        max(churned_on) as churned_on
    from churn_events
    group by customer_key, month
),

-- every month from the first order month to the as-of month
months as (
    select unnest(generate_series(
        (select min({{ dbt.date_trunc('month', 'first_order_local_date') }})::date from persons),
        (select as_of_month from as_of),
        interval 1 month
    ))::date as month
),

person_months as (
    select
        persons.customer_key,
        persons.first_order_local_date,
        {{ dbt.date_trunc('month', 'persons.first_order_local_date') }}::date as first_order_month,
        months.month
    from persons
    inner join months on months.month >= {{ dbt.date_trunc('month', 'persons.first_order_local_date') }}::date
),

-- the counted orders before each month: the state at its start (midnight local on the 1st)
cumulated as (
    select
        person_months.customer_key,
        person_months.month,
        person_months.first_order_month,
        person_months.first_order_local_date,
        coalesce(monthly_orders.orders, 0) as orders,
        coalesce(monthly_orders.net_revenue, 0) as net_revenue,
        coalesce(monthly_orders.has_reactivation, false) as has_reactivation,
        monthly_churns.churned_on,
        coalesce(sum(monthly_orders.orders) over months_before, 0) as orders_at_start,
        coalesce(sum(monthly_orders.net_revenue) over months_before, 0) as net_revenue_at_start,
        max(monthly_orders.last_order_local_date) over months_before as last_order_local_date_at_start
    from person_months
    left join monthly_orders
        on person_months.customer_key = monthly_orders.customer_key
        and person_months.month = monthly_orders.month
    left join monthly_churns
        on person_months.customer_key = monthly_churns.customer_key
        and person_months.month = monthly_churns.month
    window months_before as (
        partition by person_months.customer_key
        order by person_months.month
        rows between unbounded preceding and 1 preceding
    )
),

-- days count to the 1st of the month, as customer_360 counts them to its as-of date
at_start as (
    select
        *,
        (month - last_order_local_date_at_start)::integer as days_since_last_order_at_start,
        {{ churn_threshold_days('first_order_local_date', 'last_order_local_date_at_start', 'orders_at_start') }}
            as churn_threshold_days_at_start
    from cumulated
),

scored as (
    select
        *,
        ({{ rfm_recency_score('days_since_last_order_at_start') }})::integer as recency_score_at_start,
        ({{ rfm_frequency_score('orders_at_start') }})::integer as frequency_score_at_start,
        (case when orders_at_start > 0 then {{ rfm_monetary_score('net_revenue_at_start') }} end)::integer
            as monetary_score_at_start
    from at_start
),

final as (
    select
        scored.customer_key,
        scored.month,
        scored.first_order_month,
        {{ dbt.datediff('scored.first_order_month', 'scored.month', 'month') }}::integer as months_since_first_order,
        scored.month = as_of.as_of_month as is_partial_month,
        scored.orders_at_start::bigint as orders_at_start,
        scored.net_revenue_at_start::decimal(38, 2) as net_revenue_at_start,
        scored.last_order_local_date_at_start,
        scored.days_since_last_order_at_start,
        scored.churn_threshold_days_at_start,
        scored.recency_score_at_start,
        scored.frequency_score_at_start,
        scored.monetary_score_at_start,
        {{ rfm_segment('scored.recency_score_at_start', 'scored.frequency_score_at_start', 'scored.monetary_score_at_start') }}
            as rfm_segment_at_start,
        coalesce(scored.days_since_last_order_at_start > scored.churn_threshold_days_at_start, false)
            as is_churned_at_start,
        scored.orders::bigint as orders,
        scored.net_revenue::decimal(38, 2) as net_revenue,
        scored.orders > 0 as is_active,
        scored.month = scored.first_order_month as is_new,
        scored.has_reactivation as is_reactivated,
        scored.churned_on is not null as is_churned_in_month,
        scored.churned_on
    from scored
    cross join as_of
)

select * from final
