with

source as (

    select * from {{ source('raw', 'surveys') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by response_id
            order by _partition_date desc, _row_number desc
        ) as version_rank
    from source

)

select
    cast(response_id as {{ dbt.type_string() }}) as response_id,
    cast(customer_id as {{ dbt.type_string() }}) as customer_id,
    lower(survey) as survey,
    score,
    {{ nps_category('score') }} as nps_category,
    cast(responded_at as {{ dbt.type_timestamp() }}) as responded_at,
    cast(responded_at as date) as responded_date
from ranked
where version_rank = 1
