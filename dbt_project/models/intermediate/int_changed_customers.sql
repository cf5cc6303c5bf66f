{{ config(materialized='table') }}

-- The customers whose order-derived rows an incremental run recomputes (see the .yml): a
-- table rebuilt by every run from the raw rows of the window only (plus the owners of the
-- orders concerned), so its cost follows the new partitions, not the history.
{%- set window_start = lifecycle_window_start() %}

with

-- orders whose latest version, review or lateness can change in this run
window_orders as (

    select cast(order_id as {{ dbt.type_string() }}) as order_id
    from {{ source('raw', 'orders') }}
    where _partition_date >= {{ window_start }}
        or cast(ordered_at as date) >= {{ window_start }}
        or promised_delivery_date >= {{ add_days(window_start, -1) }}

    union

    select cast(order_id as {{ dbt.type_string() }}) as order_id
    from {{ source('raw', 'reviews') }}
    where order_id is not null
        and (
            _partition_date >= {{ window_start }}
            or cast(created_at as date) >= {{ window_start }}
        )

)

-- every customer who ever owned such an order (an order may change hands between versions)
select cast(customer_id as {{ dbt.type_string() }}) as customer_id
from {{ source('raw', 'orders') }}
where
    cast(order_id as {{ dbt.type_string() }})
    in (select window_orders.order_id from window_orders)

union

select cast(customer_id as {{ dbt.type_string() }}) as customer_id
from {{ source('raw', 'customers') }}
where _partition_date >= {{ window_start }}
    or cast(signed_up_at as date) >= {{ window_start }}
