with

spells as (

    select * from {{ ref('customer_lifecycle_history') }}

)

select
    cast({{ dbt.date_trunc('month', 'valid_from') }} as date) as transition_month,
    cast(coalesce(previous_stage, 'none') as varchar) as from_stage,
    cast(stage as varchar) as to_stage,
    cast(count(*) as bigint) as transitions,
    cast(count(distinct customer_id) as bigint) as customers
from spells
group by
    cast({{ dbt.date_trunc('month', 'valid_from') }} as date),
    coalesce(previous_stage, 'none'),
    stage
