with

spells as (

    select * from {{ ref('customer_lifecycle_history') }}

),

days as (

-- one row per day from the first spell to the as-of date (dbt.date_spine end is exclusive)
    {{ dbt.date_spine(
        'day',
        "(select coalesce(min(valid_from), current_date) from "
            ~ ref('customer_lifecycle_history') ~ ")",
        "(select " ~ add_days('coalesce(max(as_of_date), current_date)', 1) ~ " from "
            ~ ref('customer_lifecycle_history') ~ ")"
    ) }}

),

calendar as (

    select cast(date_day as date) as date_day
    from days

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

entries as (

    select
        valid_from as date_day,
        stage,
        count(*) as entries
    from spells
    group by valid_from, stage

),

exits as (

    select
        valid_to as date_day,
        stage,
        count(*) as exits
    from spells
    where valid_to is not null
    group by valid_to, stage

),

daily as (

    select
        calendar.date_day,
        stages.stage,
        coalesce(entries.entries, 0) as entries,
        coalesce(exits.exits, 0) as exits
    from calendar
    cross join stages
    left join entries
        on calendar.date_day = entries.date_day and stages.stage = entries.stage
    left join exits
        on calendar.date_day = exits.date_day and stages.stage = exits.stage

)

-- customers in a stage on a day = spells started so far - spells ended so far (spells are
-- half-open [valid_from, valid_to)), so the cost grows with days x stages, not customers x days
select
    date_day,
    cast(stage as varchar) as stage,
    cast(
        sum(entries - exits) over (
            partition by stage
            order by date_day
            rows between unbounded preceding and current row
        ) as bigint
    ) as customers,
    cast(entries as bigint) as entries,
    cast(exits as bigint) as exits
from daily
