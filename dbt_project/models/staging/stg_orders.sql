with

order_events as (

    select * from {{ ref('stg_order_events') }}

),

ranked as (

    select
        *,
        count(*) over (partition by order_id) as version_count,
        row_number() over (
            partition by order_id
            order by updated_at desc, partition_date desc, source_row_number desc
        ) as version_rank
    from order_events

)

select
    order_id,
    customer_id,
    ordered_at,
    cast(ordered_at as date) as order_date,
    status,
    order_total,
    currency,
    discount_total,
    shipping_total,
    item_count,
    channel,
    promised_delivery_date,
    delivered_at,
    updated_at,
    partition_date,
    version_count
from ranked
where version_rank = 1
