{#-
    One row per as-of date and segment: members tonight, spells entered and left tonight and the
    value at stake (sum of the members' CLV). Incremental, delete+insert by as_of_date: a build
    rewrites tonight's rows only, so earlier nights (whose customer_segments are gone) are kept;
    full_refresh=false for the same reason.
-#}
{{
    config(
        materialized='incremental',
        unique_key='as_of_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        full_refresh=false
    )
}}

with

members as (

    select * from {{ ref('customer_segments') }}

),

spells as (

    select * from {{ ref('segment_membership_history') }}

),

as_of as (

    select max(as_of_date) as as_of_date from members

),

segments as (

    select 'prospect' as segment
    union all
    select 'service_recovery'
    union all
    select 'vip_nurture'
    union all
    select 'high_potential_newcomer'
    union all
    select 'win_back'
    union all
    select 'cart_recovery'
    union all
    select 'advocacy_ask'
    union all
    select 'reactivation'
    union all
    select 'nurture'

),

sizes as (

    select
        segment,
        count(*) as customers,
        sum(clv) as value_at_stake
    from members
    group by segment

),

entered as (

    select
        spells.segment,
        count(*) as entered
    from spells
    inner join as_of on spells.valid_from = as_of.as_of_date
    group by spells.segment

),

exited as (

    select
        spells.segment,
        count(*) as exited
    from spells
    inner join as_of on spells.valid_to = as_of.as_of_date
    group by spells.segment

)

select
    as_of.as_of_date,
    cast(segments.segment as varchar) as segment,
    cast(coalesce(sizes.customers, 0) as bigint) as customers,
    cast(coalesce(entered.entered, 0) as bigint) as entered,
    cast(coalesce(exited.exited, 0) as bigint) as exited,
    cast(coalesce(sizes.value_at_stake, 0) as {{ type_double() }}) as value_at_stake
from as_of
cross join segments
left join sizes on segments.segment = sizes.segment
left join entered on segments.segment = entered.segment
left join exited on segments.segment = exited.segment
where as_of.as_of_date is not null
