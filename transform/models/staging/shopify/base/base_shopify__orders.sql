{{ config(materialized='ephemeral') }}
-- Shopify orders typed, with the problem that quarantines a record (null when it is valid).
-- An order with a malformed line item is quarantined whole: its totals cannot be trusted.
with

orders as (
    {{ source_columns('raw_shopify', 'orders') }}
),

line_items as (
    {{ source_columns('raw_shopify', 'orders', nested='orders__line_items') }}
),

line_problems as (
    select
        _dlt_parent_id as order_row_id,
        min(
            case
                when quantity is null or quantity <= 0 then 'line item ' || coalesce(id::varchar, '?')
                    || ' has quantity ' || coalesce(quantity::varchar, 'null')
                when {{ to_money('price') }} is null then 'line item ' || coalesce(id::varchar, '?')
                    || ' has price ' || coalesce('''' || price || '''', 'null')
            end
        ) as problem
    from line_items
    group by _dlt_parent_id
),

typed as (
    select
        orders.id as order_id,
        orders.name as order_name,
        orders.customer__id as customer_id,
        {{ normalise_email('orders.email') }} as email,
        orders.created_at as created_at_raw,
        {{ to_utc_timestamp('orders.created_at') }} as created_at,
        {{ to_utc_timestamp('orders.processed_at') }} as processed_at,
        {{ to_utc_timestamp('orders.cancelled_at') }} as cancelled_at,
        timezone('UTC', orders.updated_at) as updated_at,
        orders.cancel_reason,
        orders.financial_status,
        orders.source_name,
        coalesce(orders.test, false) as is_test,
        orders.currency,
        orders.total_price as total_price_raw,
        {{ to_money('orders.total_price') }} as total_price,
        {{ to_money('orders.subtotal_price') }} as subtotal_price,
        {{ to_money('orders.total_discounts') }} as total_discounts,
        {{ to_money('orders.total_tax') }} as total_tax,
        orders.location_id,
        orders._dlt_id as order_row_id,
        orders._dlt_load_id as load_id,
        line_problems.problem as line_problem
    from orders
    left join line_problems on orders._dlt_id = line_problems.order_row_id
),

final as (
    select
        *,
        case
            when order_id is null then 'id is missing'
            when created_at is null then 'created_at ' || coalesce('''' || created_at_raw || '''', 'null')
                || ' is not an ISO 8601 timestamp'
            when total_price is null then 'total_price ' || coalesce('''' || total_price_raw || '''', 'null')
                || ' is not an amount'
            else line_problem
        end as problem
    from typed
)

select * from final
