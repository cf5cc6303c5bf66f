-- on every day, the customers over all stages in lifecycle_daily equal the customers known
-- by that day (known_since_date on or before it): nobody is lost or counted twice
with

daily as (

    select
        date_day,
        sum(customers) as customers
    from {{ ref('lifecycle_daily') }}
    group by date_day

),

known_per_day as (

    select
        known_since_date,
        count(*) as new_customers
    from {{ ref('int_customers') }}
    group by known_since_date

),

expected as (

    select
        daily.date_day,
        daily.customers,
        coalesce(sum(known_per_day.new_customers), 0) as known_customers
    from daily
    left join known_per_day on daily.date_day >= known_per_day.known_since_date
    group by daily.date_day, daily.customers

)

select *
from expected
where customers != known_customers
