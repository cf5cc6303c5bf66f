-- on the as-of date, lifecycle_daily counts per stage equal the current spells per stage,
-- and no day ever has a negative count
with

last_day as (

    select max(date_day) as date_day
    from {{ ref('lifecycle_daily') }}

),

daily as (

    select
        lifecycle_daily.stage,
        lifecycle_daily.customers
    from {{ ref('lifecycle_daily') }} as lifecycle_daily
    inner join last_day on lifecycle_daily.date_day = last_day.date_day

),

current_spells as (

    select
        stage,
        count(*) as customers
    from {{ ref('customer_lifecycle_history') }}
    where is_current
    group by stage

)

select
    daily.stage,
    daily.customers,
    current_spells.customers as current_spells
from daily
left join current_spells on daily.stage = current_spells.stage
where daily.customers != coalesce(current_spells.customers, 0)

union all

select
    stage,
    customers,
    null as current_spells
from {{ ref('lifecycle_daily') }}
where customers < 0
