with

surveys as (

    select * from {{ ref('stg_surveys') }}

),

customers as (

    select * from {{ ref('int_customers') }}

),

spells as (

    select * from {{ ref('customer_lifecycle_history') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

-- every answer up to the as-of date, with the answering customer's acquisition channel and
-- lifecycle stage on the answer day ('unknown' when the customer or the stage is unknown)
responses as (

    select
        cast({{ dbt.date_trunc('month', 'surveys.responded_date') }} as date) as response_month,
        coalesce(customers.acquisition_channel, 'unknown') as acquisition_channel,
        coalesce(spells.stage, 'unknown') as lifecycle_stage,
        surveys.nps_category
    from surveys
    cross join as_of
    left join customers on surveys.customer_id = customers.customer_id
    left join spells
        on
            surveys.customer_id = spells.customer_id
            and surveys.responded_date >= spells.valid_from
            and (spells.valid_to is null or surveys.responded_date < spells.valid_to)
    where surveys.responded_date <= as_of.as_of_date

),

by_dimension as (

    select
        response_month,
        'all' as dimension,
        'all' as dimension_value,
        nps_category
    from responses

    union all

    select
        response_month,
        'acquisition_channel' as dimension,
        acquisition_channel as dimension_value,
        nps_category
    from responses

    union all

    select
        response_month,
        'lifecycle_stage' as dimension,
        lifecycle_stage as dimension_value,
        nps_category
    from responses

),

counted as (

    select
        response_month,
        dimension,
        dimension_value,
        count(*) as responses,
        sum(case when nps_category = 'promoter' then 1 else 0 end) as promoters,
        sum(case when nps_category = 'passive' then 1 else 0 end) as passives,
        sum(case when nps_category = 'detractor' then 1 else 0 end) as detractors
    from by_dimension
    group by response_month, dimension, dimension_value

)

select
    response_month,
    cast(dimension as varchar) as dimension,
    cast(dimension_value as varchar) as dimension_value,
    cast(responses as bigint) as responses,
    cast(promoters as bigint) as promoters,
    cast(passives as bigint) as passives,
    cast(detractors as bigint) as detractors,
    cast(100.0 * (promoters - detractors) / responses as {{ type_double() }}) as nps
from counted
