{{
    config(
        materialized='incremental',
        unique_key='transition_month',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_rebuilt_months('transition_month >= ' ~ lifecycle_recompute_from()) }}"
    )
}}

with

-- incremental: the months from the first month whose spells can change (macro
-- lifecycle_recompute_from; spells started since the last run are in it too); the pre-hook
-- deletes them first
spells as (

    select * from {{ ref('customer_lifecycle_history') }}
    {%- if is_incremental() %}
        where valid_from >= {{ lifecycle_recompute_from() }}
    {%- endif %}

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
