{{ config(materialized='view') }}

with

spells as (

    select * from {{ ref('int_lifecycle_spells') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

-- the stored spells run ahead of time (scheduled at_risk / lapsed dates); as of a date, only
-- spells started by then exist and the one in force is open
dated as (

    select
        spells.*,
        as_of.as_of_date,
        case when spells.valid_to <= as_of.as_of_date then spells.valid_to end as observed_to
    from spells
    cross join as_of
    where spells.valid_from <= as_of.as_of_date

)

select
    cast(spell_id as varchar) as spell_id,
    cast(customer_id as varchar) as customer_id,
    cast(spell_number as bigint) as spell_number,
    cast(stage as varchar) as stage,
    cast(previous_stage as varchar) as previous_stage,
    valid_from,
    observed_to as valid_to,
    observed_to is null as is_current,
    cast({{ dbt.datediff(
        'valid_from',
        'coalesce(observed_to, ' ~ add_days('as_of_date', 1) ~ ')',
        'day'
    ) }} as bigint) as duration_days,
    as_of_date
from dated
