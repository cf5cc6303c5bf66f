{{
    config(
        materialized='incremental',
        unique_key='date_day',
        incremental_strategy='delete+insert',
        on_schema_change='fail'
    )
}}

with

spells as (

    select * from {{ ref('customer_lifecycle_history') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

-- full refresh: every day from the first spell; incremental: the days from the first day a
-- spell can have changed (macro lifecycle_recompute_from) or the first day not stored yet,
-- carrying the stored counts of the day before forward
bounds as (

    select
        {% if is_incremental() -%}
            greatest(
                min(spells.valid_from),
                least(
                    {{ lifecycle_recompute_from() }},
                    (select {{ add_days('max(date_day)', 1) }} from {{ this }})
                )
            ) as first_day,
        {%- else -%}
            min(spells.valid_from) as first_day,
        {%- endif %}
        max(as_of.as_of_date) as last_day
    from spells
    cross join as_of

),

-- day offsets 0..36599 (100 years), generated without a compile-time query
day_offsets as (

    {{ dbt.generate_series(36600) }}

),

calendar as (

    select {{ add_days('bounds.first_day', 'day_offsets.generated_number - 1') }} as date_day
    from day_offsets
    cross join bounds
    where day_offsets.generated_number - 1
        <= {{ dbt.datediff('bounds.first_day', 'bounds.last_day', 'day') }}

),

stages as (

    select 'prospect' as stage
    union all
    select 'new'
    union all
    select 'active'
    union all
    select 'at_risk'
    union all
    select 'lapsed'
    union all
    select 'reactivated'

),

starting_counts as (

    {% if is_incremental() -%}
        select
            previous.stage,
            previous.customers
        from {{ this }} as previous
        inner join bounds on previous.date_day = {{ add_days('bounds.first_day', -1) }}
    {%- else -%}
        select
            stage,
            0 as customers
        from stages
    {%- endif %}

),

entries as (

    select
        spells.valid_from as date_day,
        spells.stage,
        count(*) as entries
    from spells
    inner join bounds on spells.valid_from >= bounds.first_day
    group by spells.valid_from, spells.stage

),

exits as (

    select
        spells.valid_to as date_day,
        spells.stage,
        count(*) as exits
    from spells
    inner join bounds on spells.valid_to >= bounds.first_day
    group by spells.valid_to, spells.stage

),

daily as (

    select
        calendar.date_day,
        stages.stage,
        coalesce(starting_counts.customers, 0) as starting_customers,
        coalesce(entries.entries, 0) as entries,
        coalesce(exits.exits, 0) as exits
    from calendar
    cross join stages
    left join starting_counts on stages.stage = starting_counts.stage
    left join entries
        on calendar.date_day = entries.date_day and stages.stage = entries.stage
    left join exits
        on calendar.date_day = exits.date_day and stages.stage = exits.stage

)

-- customers in a stage on a day = customers the day before the first computed day + spells
-- started since - spells ended since (spells are half-open [valid_from, valid_to)), so the
-- cost grows with the recomputed days x stages and the spells changing in them
select
    date_day,
    cast(stage as varchar) as stage,
    cast(
        starting_customers + sum(entries - exits) over (
            partition by stage
            order by date_day
            rows between unbounded preceding and current row
        ) as bigint
    ) as customers,
    cast(entries as bigint) as entries,
    cast(exits as bigint) as exits
from daily
