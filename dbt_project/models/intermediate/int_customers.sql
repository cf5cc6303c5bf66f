{{
    config(
        materialized='incremental',
        unique_key='customer_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_customers() }}"
    )
}}
-- depends_on: {{ ref('int_changed_customers') }}

with

-- incremental: the changed customers only (int_changed_customers), from their raw rows
customers as (

    {% if is_incremental() -%}
        {{ staged_customers(
            "cast(customer_id as " ~ dbt.type_string() ~ ") in (" ~ changed_customer_ids() ~ ")"
        ) }}
    {%- else -%}
        select * from {{ ref('stg_customers') }}
    {%- endif %}

),

orders as (

    select * from {{ ref('stg_orders') }}
    {%- if is_incremental() %}
        where customer_id in ({{ changed_customer_ids() }})
    {%- endif %}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

order_customers as (

    select
        orders.customer_id,
        min(orders.order_date) as first_seen_order_date
    from orders
    cross join as_of
    where orders.order_date <= as_of.as_of_date
    group by orders.customer_id

),

customer_ids as (

    select customer_id from customers
    union
    select customer_id from order_customers

),

joined as (

    select
        customer_ids.customer_id,
        customers.signed_up_at,
        customers.signed_up_date,
        customers.country,
        customers.acquisition_channel,
        customers.customer_id is not null as has_customer_record,
        order_customers.first_seen_order_date,
        case
            when customers.signed_up_date is null then order_customers.first_seen_order_date
            when order_customers.first_seen_order_date is null then customers.signed_up_date
            when customers.signed_up_date <= order_customers.first_seen_order_date
                then customers.signed_up_date
            else order_customers.first_seen_order_date
        end as known_since_date
    from customer_ids
    left join customers on customer_ids.customer_id = customers.customer_id
    left join order_customers on customer_ids.customer_id = order_customers.customer_id

)

select joined.*
from joined
cross join as_of
where joined.known_since_date <= as_of.as_of_date
{%- if is_incremental() %}
    and joined.customer_id in ({{ changed_customer_ids() }})
{%- endif %}
