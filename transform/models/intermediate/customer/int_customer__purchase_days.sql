-- One row per person and shop-local day with at least one counted order: the transactions the
-- purchase models (int_customer__clv_fit, int_customer__clv) learn from. Several orders on one
-- day are one purchase, as in Fader, Hardie & Lee's CDNOW data. as_of_local_date is the run's
-- "now" as a shop-local date, the end of the observation period.
with

order_facts as (
    select * from {{ ref('int_customer__order_facts') }}
),

as_of as (
    select ({{ to_shop_time(as_of()) }})::date as as_of_local_date
),

final as (
    select
        customer_key,
        order_local_date as purchase_date,
        count(*) as orders,
        sum(net_revenue) as net_revenue,
        any_value(as_of.as_of_local_date) as as_of_local_date
    from order_facts
    cross join as_of
    where order_facts.is_counted
        and order_facts.customer_key is not null
        and order_facts.order_local_date <= as_of.as_of_local_date
    group by order_facts.customer_key, order_facts.order_local_date
)

select * from final
