{#- churn_monthly agrees with itself, with churn_cohort_retention and with customer_360:
    month by month, those churned at the start of the next month are those churned at the start
    of this one plus this month's churned minus its reactivated, and the customers at its start
    are this month's plus its new ones; every month's active customers equal the cohort mart's;
    every buyer of customer_360 is new in exactly one month, and the persons churned and not
    reactivated by the as-of date are exactly customer_360's churned. Fails with one row per
    month (or for the whole table) and problem. -#}
{% test churn_marts_consistent(model, retention, customers) %}
    with

    monthly as (
        select
            month,
            sum(customers_at_start) as customers_at_start,
            sum(churned_at_start) as churned_at_start,
            sum(active_customers) as active_customers,
            sum(new_customers) as new_customers,
            sum(churned_customers) as churned_customers,
            sum(reactivated_customers) as reactivated_customers
        from {{ model }}
        group by month
    ),

    cohort_activity as (
        select
            month,
            sum(active_customers) as active_customers
        from {{ retention }}
        group by month
    ),

    stepped as (
        select
            *,
            lead(customers_at_start) over (order by month) as next_customers_at_start,
            lead(churned_at_start) over (order by month) as next_churned_at_start
        from monthly
    ),

    monthly_problems as (
        select
            stepped.month::varchar as scope,
            case
                when stepped.next_churned_at_start
                    <> stepped.churned_at_start + stepped.churned_customers - stepped.reactivated_customers
                    then 'next month''s churned_at_start is not churned_at_start + churned - reactivated'
                when stepped.next_customers_at_start <> stepped.customers_at_start + stepped.new_customers
                    then 'next month''s customers_at_start is not customers_at_start + new'
                when cohort_activity.active_customers is distinct from stepped.active_customers
                    then 'active customers differ from churn_cohort_retention'
            end as problem
        from stepped
        left join cohort_activity on stepped.month = cohort_activity.month
    ),

    buyers as (
        select
            count(*) filter (where orders > 0) as buyers,
            count(*) filter (where lifecycle_stage = 'churned') as churned
        from {{ customers }}
    ),

    totals as (
        select
            sum(new_customers) as new_customers,
            sum(churned_customers) - sum(reactivated_customers) as still_churned
        from monthly
    ),

    total_problems as (
        select
            'all months' as scope,
            case
                when totals.new_customers <> buyers.buyers
                    then 'new customers over all months differ from the buyers in customer_360'
                when totals.still_churned <> buyers.churned
                    then 'churned minus reactivated over all months differs from customer_360''s churned'
            end as problem
        from totals
        cross join buyers
    )

    select * from monthly_problems
    where problem is not null
    union all
    select * from total_problems
    where problem is not null
{% endtest %}
