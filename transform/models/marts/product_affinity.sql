-- Products bought together: one row per ordered pair (product_a, product_b) of different products
-- in the same counted order, in both directions, so filtering on product_a lists everything
-- bought with it. An order is a basket of distinct products: units and repeated lines of a
-- product do not weigh more. Pairs bought together fewer than var
-- product_affinity_min_orders_together times (default 1) are left out.
with

order_lines as (
    select * from {{ ref('int_product__order_lines') }}
),

baskets as (
    select distinct
        order_id,
        product_id,
        product_title,
        category
    from order_lines
),

basket_count as (
    select count(distinct order_id) as orders
    from baskets
),

product_orders as (
    select
        product_id,
        product_title,
        category,
        count(*) as orders_with_product
    from baskets
    group by product_id, product_title, category
),

pairs as (
    select
        basket_a.product_id as product_a_id,
        basket_b.product_id as product_b_id,
        count(*) as orders_together
    from baskets as basket_a
    inner join baskets as basket_b
        on basket_a.order_id = basket_b.order_id
        and basket_a.product_id <> basket_b.product_id
    group by basket_a.product_id, basket_b.product_id
    having count(*) >= {{ var('product_affinity_min_orders_together') }}
),

final as (
    select
        pairs.product_a_id,
        product_a.product_title as product_a_title,
        product_a.category as product_a_category,
        pairs.product_b_id,
        product_b.product_title as product_b_title,
        product_b.category as product_b_category,
        product_a.orders_with_product as orders_with_a,
        product_b.orders_with_product as orders_with_b,
        pairs.orders_together,
        round(pairs.orders_together / basket_count.orders, 4) as support,
        round(pairs.orders_together / product_a.orders_with_product, 4) as confidence_a_to_b,
        round(pairs.orders_together / product_b.orders_with_product, 4) as confidence_b_to_a,
        -- how much more often the pair shows up than if the two were bought independently
        round(
            pairs.orders_together * basket_count.orders
            / (product_a.orders_with_product * product_b.orders_with_product),
            4
        ) as lift
    from pairs
    cross join basket_count
    inner join product_orders as product_a on pairs.product_a_id = product_a.product_id
    inner join product_orders as product_b on pairs.product_b_id = product_b.product_id
)

select * from final
