-- When people shop: one row per weekday × hour of day in the shop's time zone (var
-- shop_timezone), all 7 × 24 cells, empty ones as zeros so a heatmap has no holes. Counts counted
-- orders (not cancelled; test and malformed orders are out of fct_orders), anonymous in-store
-- sales included. Revenue is the orders' net revenue (refunds deducted, whenever they happened),
-- in the cell where the order was placed.
with

orders as (
    select * from {{ ref('fct_orders') }}
),

weekdays as (
    select * from (
        values
            (1, 'Monday'),
            (2, 'Tuesday'),
            (3, 'Wednesday'),
            (4, 'Thursday'),
            (5, 'Friday'),
            (6, 'Saturday'),
            (7, 'Sunday')
    ) as weekdays (order_weekday, order_weekday_name)
),

hours as (
    select generate_series::integer as order_hour
    from generate_series(0, 23)
),

cells as (
    select
        weekdays.order_weekday,
        weekdays.order_weekday_name,
        hours.order_hour
    from weekdays
    cross join hours
),

localised as (
    select
        order_id,
        net_revenue,
        {{ to_shop_time('ordered_at') }} as ordered_at_local
    from orders
    where not is_cancelled
),

cell_orders as (
    select
        isodow(ordered_at_local)::integer as order_weekday,
        hour(ordered_at_local)::integer as order_hour,
        count(*) as orders,
        sum(net_revenue) as net_revenue
    from localised
    group by 1, 2
),

filled as (
    select
        cells.order_weekday,
        cells.order_weekday_name,
        cells.order_hour,
        coalesce(cell_orders.orders, 0) as orders,
        coalesce(cell_orders.net_revenue, 0)::decimal(38, 2) as net_revenue
    from cells
    left join cell_orders
        on cells.order_weekday = cell_orders.order_weekday
        and cells.order_hour = cell_orders.order_hour
),

final as (
    select
        order_weekday,
        order_weekday_name,
        order_hour,
        orders,
        net_revenue,
        round(orders / nullif(sum(orders) over (), 0), 4) as order_share,
        round(net_revenue / nullif(sum(net_revenue) over (), 0), 4)::double as revenue_share
    from filled
)

select * from final
