with

source as (

    select * from {{ source('raw', 'customers') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by customer_id
            order by _partition_date desc, _row_number desc
        ) as version_rank
    from source

),

renamed as (

    select
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(signed_up_at as {{ dbt.type_timestamp() }}) as signed_up_at,
        cast(signed_up_at as date) as signed_up_date,
        case
            when email is not null then {{ dbt.hash('lower(trim(email))') }}
        end as email_hash,
        upper(trim(country)) as country,
        lower(trim(acquisition_channel)) as acquisition_channel,
        _partition_date as source_partition_date
    from ranked
    where version_rank = 1

)

select * from renamed
