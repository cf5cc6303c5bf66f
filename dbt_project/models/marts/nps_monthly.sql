with

surveys as (

    select * from {{ ref('stg_surveys') }}

),

customers as (

    select * from {{ ref('int_customers') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

responses as (

    select
        cast({{ dbt.date_trunc('month', 'surveys.responded_date') }} as date) as response_month,
        coalesce(customers.acquisition_channel, 'unknown') as acquisition_channel,
        surveys.nps_category
    from surveys
    cross join as_of
    left join customers on surveys.customer_id = customers.customer_id
    where surveys.responded_date <= as_of.as_of_date

),

by_channel as (

    select
        response_month,
        acquisition_channel,
        nps_category
    from responses
    union all
    select
        response_month,
        'all' as acquisition_channel,
        nps_category
    from responses

),

counted as (

    select
        response_month,
        acquisition_channel,
        count(*) as responses,
        sum(case when nps_category = 'promoter' then 1 else 0 end) as promoters,
        sum(case when nps_category = 'passive' then 1 else 0 end) as passives,
        sum(case when nps_category = 'detractor' then 1 else 0 end) as detractors
    from by_channel
    group by response_month, acquisition_channel

)

select
    response_month,
    cast(acquisition_channel as varchar) as acquisition_channel,
    cast(responses as bigint) as responses,
    cast(promoters as bigint) as promoters,
    cast(passives as bigint) as passives,
    cast(detractors as bigint) as detractors,
    cast(100.0 * (promoters - detractors) / responses as {{ type_double() }}) as nps
from counted
