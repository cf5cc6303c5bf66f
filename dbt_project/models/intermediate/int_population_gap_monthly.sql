{{
    config(
        materialized='incremental',
        unique_key='month_start',
        incremental_strategy='delete+insert',
        on_schema_change='fail'
    )
}}

{%- set window_days = var('population_gap_window_days') -%}

with

purchase_days as (

    select * from {{ ref('int_customer_purchase_days') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

-- full refresh: every month from the first purchase; incremental: the months whose window can
-- hold a purchase day that changed (see macro lifecycle_recompute_from)
bounds as (

    select
        {% if is_incremental() -%}
            {{ lifecycle_recompute_from() }} as first_month,
        {%- else -%}
            (
                select cast({{ dbt.date_trunc('month', 'min(purchase_date)') }} as date)
                from purchase_days
            ) as first_month,
        {%- endif %}
        cast({{ dbt.date_trunc('month', 'as_of.as_of_date') }} as date) as last_month
    from as_of

),

-- month offsets 0..1199, generated without a compile-time query
month_offsets as (

    {{ dbt.generate_series(1200) }}

),

months as (

    select
        cast({{ dbt.dateadd(
            'month', 'month_offsets.generated_number - 1', 'bounds.first_month'
        ) }} as date) as month_start
    from month_offsets
    cross join bounds
    where month_offsets.generated_number - 1
        <= {{ dbt.datediff('bounds.first_month', 'bounds.last_month', 'month') }}

),

gaps as (

    select
        purchase_days.purchase_date,
        purchase_days.gap_days
    from purchase_days
    cross join bounds
    where purchase_days.gap_days is not null
        and purchase_days.purchase_date
        >= {{ add_days('bounds.first_month', -window_days) }}

)

select
    months.month_start,
    cast(coalesce(
        percentile_cont(0.5) within group (order by gaps.gap_days),
        {{ var('default_population_gap_days') }}
    ) as {{ type_double() }}) as population_gap_days,
    cast(count(gaps.gap_days) as {{ dbt.type_bigint() }}) as gaps_count
from months
left join gaps
    on months.month_start > gaps.purchase_date
        and {{ add_days('months.month_start', -window_days) }} <= gaps.purchase_date
group by months.month_start
