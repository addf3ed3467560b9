{#- int_customer__purchases agrees with fct_orders and with itself: every person with an order
    has a row and no one else; orders and net revenue equal fct_orders'; net revenue is gross
    minus refunded; channel shares add up to one; scores, segment and lifecycle are set exactly
    for buyers with a counted order; is_churned agrees with lifecycle_stage. Fails with one row
    per person and problem. -#}
{% test customer_purchases_consistent(model, orders) %}
    with

    purchases as (
        select * from {{ model }}
    ),

    order_totals as (
        select
            customer_key,
            count(*) filter (where not is_cancelled) as orders,
            sum(net_revenue) as net_revenue
        from {{ orders }}
        where customer_key is not null
        group by customer_key
    ),

    checked as (
        select
            coalesce(purchases.customer_key, order_totals.customer_key) as customer_key,
            case
                when purchases.customer_key is null then 'person with orders in fct_orders has no row'
                when order_totals.customer_key is null then 'person has no order in fct_orders'
                when purchases.orders <> order_totals.orders then 'orders differ from fct_orders'
                when purchases.net_revenue <> order_totals.net_revenue then 'net_revenue differs from fct_orders'
                when purchases.net_revenue <> purchases.gross_revenue - purchases.refunded
                    then 'net_revenue is not gross_revenue - refunded'
                when purchases.orders > 0
                    and abs(purchases.online_order_share + purchases.in_store_order_share - 1) > 1e-9
                    then 'online and in-store shares do not add up to 1'
                when purchases.discount_order_share not between 0 and 1 then 'discount_order_share outside 0-1'
                when purchases.first_order_at > purchases.last_order_at then 'first order after last order'
                when (purchases.orders > 0) <> (purchases.rfm_segment is not null)
                    then 'rfm_segment is not set exactly for buyers with a counted order'
                when (purchases.orders > 0) <> (purchases.lifecycle_stage is not null)
                    then 'lifecycle_stage is not set exactly for buyers with a counted order'
                when purchases.is_churned <> (purchases.lifecycle_stage = 'churned')
                    then 'is_churned disagrees with lifecycle_stage'
            end as problem
        from purchases
        full outer join order_totals on purchases.customer_key = order_totals.customer_key
    )

    select * from checked
    where problem is not null
{% endtest %}
