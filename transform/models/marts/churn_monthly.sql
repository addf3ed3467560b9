-- One row per shop-local calendar month (first order month to the as-of month) × RFM segment as
-- it stood at the start of the month: customers, how many ordered, were new, churned and came
-- back, and the churn rate. Persons are counted from int_customer__months, where the churn and
-- reactivation rules of macros/rfm.sql are applied month by month.
with

customer_months as (
    select * from {{ ref('int_customer__months') }}
),

-- every segment in every month, so a segment nobody was in still has a row of zeros
segments as (
    select unnest(['{{ rfm_segments() | map("replace", "'", "''") | join("', '") }}']) as rfm_segment
),

months as (
    select
        month,
        bool_or(is_partial_month) as is_partial_month
    from customer_months
    group by month
),

-- a first-time buyer had no segment at the start of the month: they count as 'New', the segment
-- a first order gives (recency 5, frequency 1) and the one they start the next month in
counts as (
    select
        month,
        coalesce(rfm_segment_at_start, 'New') as rfm_segment,
        count(*) filter (where orders_at_start > 0) as customers_at_start,
        count(*) filter (where is_churned_at_start) as churned_at_start,
        count(*) filter (where is_active) as active_customers,
        count(*) filter (where is_new) as new_customers,
        count(*) filter (where is_churned_in_month) as churned_customers,
        count(*) filter (where is_reactivated) as reactivated_customers
    from customer_months
    group by month, coalesce(rfm_segment_at_start, 'New')
),

final as (
    select
        months.month,
        segments.rfm_segment,
        coalesce(counts.customers_at_start, 0)::bigint as customers_at_start,
        coalesce(counts.churned_at_start, 0)::bigint as churned_at_start,
        coalesce(counts.active_customers, 0)::bigint as active_customers,
        coalesce(counts.new_customers, 0)::bigint as new_customers,
        coalesce(counts.churned_customers, 0)::bigint as churned_customers,
        coalesce(counts.reactivated_customers, 0)::bigint as reactivated_customers,
        -- of those who could churn: not churned when the month began
        counts.churned_customers::double / nullif(counts.customers_at_start - counts.churned_at_start, 0)
            as churn_rate,
        months.is_partial_month
    from months
    cross join segments
    left join counts
        on months.month = counts.month
        and segments.rfm_segment = counts.rfm_segment
)

select * from final
