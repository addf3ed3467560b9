-- One row per cohort (shop-local month of a person's first counted order) × month since then, up
-- to the as-of month: how many of the cohort ordered that month and what they spent. Every person
-- has a row in int_customer__months for every month from their first to the as-of month, so the
-- triangle is complete, with zero rows for months in which nobody of a cohort ordered.
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

final as (
    select
        cohort_month,
        months_since_first_order,
        month,
        cohort_customers::bigint as cohort_customers,
        active_customers::bigint as active_customers,
        active_customers::double / cohort_customers as retention_rate,
        net_revenue::decimal(38, 2) as net_revenue,
        is_partial_month
    from cohort_months
)

select * from final
