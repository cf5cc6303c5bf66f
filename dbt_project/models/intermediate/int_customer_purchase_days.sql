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

-- incremental: every purchase day of the changed customers (the pre-hook deletes their rows
-- first: a customer whose only order was cancelled has none left)
orders as (

    select * from {{ ref('int_orders') }}
    {%- if is_incremental() %}
        where customer_id in ({{ changed_customer_ids() }})
    {%- endif %}

),

-- cancelled orders are not purchases; returned orders are (the customer did buy: a return
-- lowers revenue, not activity). Same-day orders collapse into one purchase day.
purchase_days as (

    select
        customer_id,
        order_date as purchase_date,
        count(*) as orders_count,
        cast(sum(net_revenue) as decimal(18, 2)) as net_revenue
    from orders
    where not is_cancelled
    group by customer_id, order_date

),

sequenced as (

    select
        customer_id,
        purchase_date,
        orders_count,
        net_revenue,
        row_number() over (partition by customer_id order by purchase_date) as purchase_number,
        min(purchase_date) over (partition by customer_id) as first_purchase_date,
        lag(purchase_date) over (partition by customer_id order by purchase_date)
            as previous_purchase_date,
        lead(purchase_date) over (partition by customer_id order by purchase_date)
            as next_purchase_date
    from purchase_days

),

gaps as (

    select
        *,
        {{ dbt.datediff(
            'previous_purchase_date', 'purchase_date', 'day'
        ) }} as gap_days
    from sequenced

)

select
    customer_id,
    purchase_date,
    orders_count,
    net_revenue,
    purchase_number,
    first_purchase_date,
    previous_purchase_date,
    next_purchase_date,
    gap_days,
    avg(gap_days) over (
        partition by customer_id
        order by purchase_date
        rows between unbounded preceding and current row
    ) as mean_gap_days
from gaps
