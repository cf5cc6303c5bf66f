{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail'
    )
}}

-- depends_on: {{ ref('int_changed_customers') }}

with

-- incremental: the orders of the customers whose order rows can change (int_changed_customers:
-- an order version, a review or a passing promised date in the window; order_sequence is per
-- customer); delete+insert by order_id
orders as (

    select * from {{ ref('int_orders') }}
    {%- if is_incremental() %}
        where customer_id in ({{ changed_customer_ids() }})
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
