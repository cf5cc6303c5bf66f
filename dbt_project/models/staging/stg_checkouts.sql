with

source as (

    select * from {{ source('raw', 'checkouts') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by checkout_id
            order by _partition_date desc, _row_number desc
        ) as version_rank
    from source

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
where version_rank = 1
