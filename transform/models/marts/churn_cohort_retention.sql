-- One row per cohort (shop-local month of a person's first counted order) × month since then, up
-- to the as-of month: how many of the cohort ordered that month, what they spent, and what they
-- have spent so far per person. Every person has a row in int_customer__months for every month
-- from their first to the as-of month, so the triangle is complete, with zero rows for months in
-- which nobody of a cohort ordered.
with

customer_months as (
    select * from {{ ref('int_customer__months') }}
),

cohort_months as (
    select
        first_order_month as cohort_month,
        months_since_first_order,
        month,
        bool_or(is_partial_month) as is_partial_month,
        count(*) as cohort_customers,
        count(*) filter (where is_active) as active_customers,
        sum(net_revenue) as net_revenue
    from customer_months
    group by first_order_month, months_since_first_order, month
),

-- revenue to date per cohort customer compares cohorts of different sizes (a CLV curve)
cumulated as (
    select
        *,
        sum(net_revenue) over (
            partition by cohort_month
            order by months_since_first_order
            rows between unbounded preceding and current row
        ) as cumulative_net_revenue
    from cohort_months
),

final as (
    select
        cohort_month,
        months_since_first_order,
        month,
        cohort_customers::bigint as cohort_customers,
        active_customers::bigint as active_customers,
        active_customers::double / cohort_customers as retention_rate,
        net_revenue::decimal(38, 2) as net_revenue,
        cumulative_net_revenue::decimal(38, 2) as cumulative_net_revenue,
        round(cumulative_net_revenue / cohort_customers, 2)::decimal(38, 2) as cumulative_net_revenue_per_customer,
        is_partial_month
    from cumulated
)

select * from final
