with

source as (

    select * from {{ source('raw', 'reviews') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by review_id
            order by _partition_date desc, _row_number desc
        ) as version_rank
    from source

)

select
    cast(review_id as {{ dbt.type_string() }}) as review_id,
    cast(customer_id as {{ dbt.type_string() }}) as customer_id,
    cast(order_id as {{ dbt.type_string() }}) as order_id,
    rating,
    cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
    cast(created_at as date) as created_date,
    coalesce({{ dbt.length('trim(body)') }}, 0) > 0 as has_body,
    coalesce({{ dbt.length('body') }}, 0) as body_length
from ranked
where version_rank = 1
