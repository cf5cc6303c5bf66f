{{
    config(
        materialized='incremental',
        unique_key='response_month',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_rebuilt_months(nps_month_is_rebuilt('response_month')) }}"
    )
}}
-- depends_on: {{ ref('stg_surveys') }}

with

-- incremental: the answers of the months whose rows can change (macro nps_month_is_rebuilt),
-- from their raw rows; the pre-hook deletes those months first
surveys as (

    {% if is_incremental() -%}
        select *
        from ({{ staged_surveys(
            "response_id in (select months.response_id from " ~ source('raw', 'surveys')
            ~ " as months where " ~ nps_month_is_rebuilt(month_of('months.responded_at')) ~ ")"
        ) }}) as rebuilt_surveys
        where {{ nps_month_is_rebuilt(month_of('rebuilt_surveys.responded_date')) }}
    {%- else -%}
        select * from {{ ref('stg_surveys') }}
    {%- endif %}

),

customers as (

    select * from {{ ref('int_customers') }}
    {%- if is_incremental() %}
        where customer_id in (select surveys.customer_id from surveys)
    {%- endif %}

),

spells as (

    select * from {{ ref('customer_lifecycle_history') }}
    {%- if is_incremental() %}
        where customer_id in (select surveys.customer_id from surveys)
    {%- endif %}

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
            -- coalesce, not "valid_to is null or ...": an OR in the join condition turns
            -- the join into a nested loop (surveys x spells) on DuckDB
            and surveys.responded_date < coalesce(spells.valid_to, cast('9999-12-31' as date))
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
