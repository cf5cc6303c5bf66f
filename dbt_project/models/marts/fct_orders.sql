{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail'
    )
}}

with

{% if is_incremental() -%}
-- customers whose order rows can change; all their orders are recomputed (order_sequence is
-- per customer): an order version landed in the window (every customer who ever owned such an
-- order), a review landed in the window, or an open order whose promised date the as-of date
-- may just have passed (is_late)
window_orders as (

    select order_id
    from {{ source('raw', 'orders') }}
    where _partition_date >= {{ lifecycle_window_start() }}

),

changed_customers as (

    select cast(customer_id as {{ dbt.type_string() }}) as customer_id
    from {{ source('raw', 'orders') }}
    where order_id in (select window_orders.order_id from window_orders)

    union

    select customer_id
    from {{ this }}
    where order_id in (
        select cast(order_id as {{ dbt.type_string() }})
        from {{ source('raw', 'reviews') }}
        where _partition_date >= {{ lifecycle_window_start() }}
    )

    union

    select customer_id
    from {{ this }}
    where not is_delivered
        and not is_cancelled
        and promised_delivery_date >= {{ add_days(lifecycle_window_start(), -1) }}

),

{% endif -%}

orders as (

    select * from {{ ref('int_orders') }}
    {% if is_incremental() -%}
        where customer_id in (select changed_customers.customer_id from changed_customers)
    {%- endif %}

)

select
    cast(order_id as varchar) as order_id,
    cast(customer_id as varchar) as customer_id,
    ordered_at,
    order_date,
    updated_at,
    cast(status as varchar) as status,
    cast(currency as varchar) as currency,
    cast(order_total as decimal(18, 2)) as order_total,
    cast(net_revenue as decimal(18, 2)) as net_revenue,
    cast(discount_total as decimal(18, 2)) as discount_total,
    cast(shipping_total as decimal(18, 2)) as shipping_total,
    cast(item_count as integer) as item_count,
    cast(channel as varchar) as channel,
    promised_delivery_date,
    delivered_at,
    delivered_date,
    cast(delivery_delay_days as integer) as delivery_delay_days,
    is_delivered,
    is_late,
    is_cancelled,
    is_returned,
    cast(review_id as varchar) as review_id,
    cast(review_rating as integer) as review_rating,
    cast(order_sequence as integer) as order_sequence,
    is_first_order,
    cast(version_count as integer) as version_count
from orders
