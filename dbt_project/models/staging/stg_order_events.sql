with

source as (

    select * from {{ source('raw', 'orders') }}

),

typed as (

    select
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(ordered_at as {{ dbt.type_timestamp() }}) as ordered_at,
        lower(status) as status,
        order_total,
        upper(currency) as currency,
        discount_total,
        shipping_total,
        item_count,
        lower(channel) as channel,
        promised_delivery_date,
        cast(delivered_at as {{ dbt.type_timestamp() }}) as delivered_at,
        cast(coalesce(updated_at, ordered_at) as {{ dbt.type_timestamp() }}) as updated_at,
        _partition_date,
        _row_number
    from source

),

-- exact duplicates (the same version re-landed, possibly on another day) are kept once:
-- the first landing wins.
deduplicated as (

    select
        *,
        row_number() over (
            partition by
                order_id, customer_id, ordered_at, status, order_total, currency,
                discount_total, shipping_total, item_count, channel,
                promised_delivery_date, delivered_at, updated_at
            order by _partition_date, _row_number
        ) as duplicate_rank
    from typed

)

select
    {{ dbt.hash(dbt.concat([
        "order_id", "'|'", "cast(_partition_date as " ~ dbt.type_string() ~ ")",
        "'|'", "cast(_row_number as " ~ dbt.type_string() ~ ")"
    ])) }} as order_event_id,
    order_id,
    customer_id,
    ordered_at,
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
    _partition_date as partition_date,
    _row_number as source_row_number
from deduplicated
where duplicate_rank = 1
