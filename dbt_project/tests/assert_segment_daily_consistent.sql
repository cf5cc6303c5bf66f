-- segment_daily: one row per as-of date and segment; entered / exited equal the spells of
-- segment_membership_history starting / ending that night; on the current as-of date the
-- customers per segment equal customer_segments
with

daily as (

    select * from {{ ref('segment_daily') }}

),

spells as (

    select * from {{ ref('segment_membership_history') }}

),

members as (

    select
        as_of_date,
        segment,
        count(*) as customers
    from {{ ref('customer_segments') }}
    group by as_of_date, segment

),

entered as (

    select
        valid_from as as_of_date,
        segment,
        count(*) as spells
    from spells
    group by valid_from, segment

),

exited as (

    select
        valid_to as as_of_date,
        segment,
        count(*) as spells
    from spells
    where valid_to is not null
    group by valid_to, segment

),

checked as (

    select
        daily.*,
        count(*) over (partition by daily.as_of_date, daily.segment) as rows_per_key,
        coalesce(entered.spells, 0) as spells_entered,
        coalesce(exited.spells, 0) as spells_exited,
        members.customers as members_customers,
        daily.as_of_date = (
            select max(tonight.as_of_date) from {{ ref('customer_segments') }} as tonight
        ) as is_current_date
    from daily
    left join entered
        on daily.as_of_date = entered.as_of_date and daily.segment = entered.segment
    left join exited
        on daily.as_of_date = exited.as_of_date and daily.segment = exited.segment
    left join members
        on daily.as_of_date = members.as_of_date and daily.segment = members.segment

)

select *
from checked
where rows_per_key != 1
    or entered != spells_entered
    or exited != spells_exited
    or (is_current_date and customers != coalesce(members_customers, 0))
