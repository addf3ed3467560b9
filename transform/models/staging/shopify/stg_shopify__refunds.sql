-- One row per successful refund transaction: money returned to the customer, dated by the refund.
with

refunds as (
    {{ source_columns('raw_shopify', 'orders', nested='orders__refunds') }}
),

transactions as (
    {{ source_columns('raw_shopify', 'orders', nested='orders__refunds__transactions') }}
),

final as (
    select
        transactions.id as refund_transaction_id,
        refunds.id as refund_id,
        refunds.order_id,
        {{ to_utc_timestamp('refunds.created_at') }} as refunded_at,
        {{ to_money('transactions.amount') }} as amount
    from transactions
    -- resolves dlt's parent row id to the refund; not a business join
    inner join refunds on transactions._dlt_parent_id = refunds._dlt_id
    where transactions.kind = 'refund'
        and transactions.status = 'success'
)

select * from final
