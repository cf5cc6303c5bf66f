{#-
    Segment spells, appended night by night from customer_segments (which only holds the
    current as-of date, so this table is the only record of past memberships).
    Incremental, delete+insert by customer: a run rewrites every spell of the customers whose
    history tonight touches (segment changed, new customer, or a spell stored by an earlier
    build of the same night), recomputed from their spells started before tonight. Rebuilding a
    night is therefore idempotent even when its segments changed in between. A night older than
    the newest stored spell start changes nothing. full_refresh=false: `dbt build
    --full-refresh` keeps the history (drop the table by hand to restart it).
-#}
{{
    config(
        materialized='incremental',
        unique_key='customer_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        full_refresh=false
    )
}}

with

tonight as (

    select
        customer_id,
        as_of_date,
        segment,
        recommended_action
    from {{ ref('customer_segments') }}

),

stored as (

    {% if is_incremental() -%}
        select
            customer_id,
            segment,
            valid_from,
            valid_to,
            recommended_action
        from {{ this }}
    {%- else -%}
        -- first build: no history yet (every customer opens a spell tonight)
        select
            customer_id,
            segment,
            as_of_date as valid_from,
            as_of_date as valid_to,
            recommended_action
        from tonight
        where 1 = 0
    {%- endif %}

),

-- tonight's date, unless an already stored night is newer (then nothing is rewritten)
run_date as (

    select max(tonight.as_of_date) as as_of_date
    from tonight
    having
        max(tonight.as_of_date)
        >= coalesce((select max(stored.valid_from) from stored), max(tonight.as_of_date))

),

-- the history as it was before tonight: spells started earlier, reopened if tonight closed them
earlier as (

    select
        stored.customer_id,
        stored.segment,
        stored.valid_from,
        case when stored.valid_to < run_date.as_of_date then stored.valid_to end as valid_to,
        stored.recommended_action
    from stored
    inner join run_date on stored.valid_from < run_date.as_of_date

),

-- customers whose stored spells mention tonight (an earlier build of the same night)
rebuilt as (

    select stored.customer_id
    from stored
    inner join run_date
        on stored.valid_from >= run_date.as_of_date or stored.valid_to >= run_date.as_of_date

),

-- customers entering a segment tonight: new, or in another segment before tonight
changed as (

    select
        tonight.customer_id,
        tonight.segment,
        tonight.recommended_action,
        run_date.as_of_date
    from tonight
    inner join run_date on tonight.as_of_date = run_date.as_of_date
    left join earlier on tonight.customer_id = earlier.customer_id and earlier.valid_to is null
    where earlier.customer_id is null or earlier.segment != tonight.segment

),

touched as (

    select customer_id from rebuilt
    union
    select customer_id from changed

),

spells as (

    -- every earlier spell of a touched customer; the open one is closed tonight if it changed
    select
        earlier.customer_id,
        earlier.segment,
        earlier.valid_from,
        coalesce(earlier.valid_to, changed.as_of_date) as valid_to,
        earlier.recommended_action
    from earlier
    inner join touched on earlier.customer_id = touched.customer_id
    left join changed on earlier.customer_id = changed.customer_id and earlier.valid_to is null

    union all

    select
        customer_id,
        segment,
        as_of_date as valid_from,
        cast(null as date) as valid_to,
        recommended_action
    from changed

)

select
    cast({{ dbt.hash(dbt.concat([
        "customer_id", "'|'", "cast(valid_from as " ~ dbt.type_string() ~ ")"
    ])) }} as varchar) as spell_id,
    cast(customer_id as varchar) as customer_id,
    cast(segment as varchar) as segment,
    cast(valid_from as date) as valid_from,
    cast(valid_to as date) as valid_to,
    valid_to is null as is_current,
    cast(recommended_action as varchar) as recommended_action
from spells
