with

ranked as (

    {{ latest_landing('checkouts', 'checkout_id') }}

)

select
    cast(checkout_id as {{ dbt.type_string() }}) as checkout_id,
    cast(customer_id as {{ dbt.type_string() }}) as customer_id,
    cast(started_at as {{ dbt.type_timestamp() }}) as started_at,
    cast(started_at as date) as started_date,
    cart_value,
    cast(completed_order_id as {{ dbt.type_string() }}) as completed_order_id,
    completed_order_id is null as is_abandoned
from ranked
