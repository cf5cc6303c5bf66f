{%- set new_days = var('new_days') -%}
{%- set lapsed_days = var('lapsed_days') -%}

with

customers as (

    select * from {{ ref('int_customers') }}

),

purchase_days as (

    select * from {{ ref('int_customer_purchase_days') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

-- fallback rhythm for customers with a single purchase day so far
population_gap as (

    select
        coalesce(
            percentile_cont(0.5) within group (order by gap_days),
            {{ var('default_population_gap_days') }}
        ) as population_gap_days
    from purchase_days
    where gap_days is not null

),

-- the window (new or reactivated) a purchase day falls in starts at the first purchase or at
-- the latest purchase that ended a lapse
windows as (

    select
        purchase_days.*,
        max(
            case
                when purchase_days.purchase_number = 1
                    or purchase_days.gap_days > {{ lapsed_days }}
                    then purchase_days.purchase_date
            end
        ) over (
            partition by purchase_days.customer_id
            order by purchase_days.purchase_date
            rows between unbounded preceding and current row
        ) as window_start_date
    from purchase_days

),

purchase_points as (

    select
        windows.customer_id,
        windows.purchase_date,
        case
            when windows.window_start_date = windows.first_purchase_date then 'new'
            else 'reactivated'
        end as window_stage,
        {{ add_days('windows.window_start_date', new_days) }} as window_end_date,
        coalesce(
            windows.next_purchase_date, {{ add_days('as_of.as_of_date', 1) }}
        ) as horizon_date,
        {{ add_days('windows.purchase_date', lapsed_days) }} as lapsed_date,
        cast(ceil(
            {{ var('at_risk_gap_multiple') }} * greatest(
                coalesce(windows.mean_gap_days, population_gap.population_gap_days),
                {{ var('at_risk_min_gap_days') }}
            )
        ) as {{ dbt.type_int() }}) as at_risk_after_days
    from windows
    cross join as_of
    cross join population_gap

),

scheduled as (

    select
        purchase_points.*,
        case
            when purchase_points.purchase_date < purchase_points.window_end_date
                then purchase_points.window_stage
            else 'active'
        end as purchase_stage,
        -- a newcomer / reactivated customer is never at risk inside their window
        greatest(
            {{ add_days('purchase_points.purchase_date', 'purchase_points.at_risk_after_days') }},
            purchase_points.window_end_date
        ) as at_risk_date
    from purchase_points

),

first_purchases as (

    select
        customer_id,
        min(purchase_date) as first_purchase_date
    from purchase_days
    group by customer_id

),

change_points as (

    select
        customers.customer_id,
        customers.known_since_date as change_date,
        'prospect' as stage
    from customers
    left join first_purchases as firsts on customers.customer_id = firsts.customer_id
    where firsts.first_purchase_date is null
        or customers.known_since_date < firsts.first_purchase_date

    union all

    select
        customer_id,
        purchase_date as change_date,
        purchase_stage as stage
    from scheduled

    union all

    select
        customer_id,
        window_end_date as change_date,
        'active' as stage
    from scheduled
    where window_end_date > purchase_date
        and window_end_date < at_risk_date
        and window_end_date < horizon_date

    union all

    select
        customer_id,
        at_risk_date as change_date,
        'at_risk' as stage
    from scheduled
    where at_risk_date < lapsed_date
        and at_risk_date < horizon_date

    union all

    select
        customer_id,
        lapsed_date as change_date,
        'lapsed' as stage
    from scheduled
    where lapsed_date < horizon_date

),

collapsed as (

    select
        customer_id,
        change_date,
        stage,
        lag(stage) over (partition by customer_id order by change_date) as previous_stage
    from change_points

),

spells as (

    select
        customer_id,
        stage,
        previous_stage,
        change_date as valid_from,
        lead(change_date) over (partition by customer_id order by change_date) as valid_to
    from collapsed
    where previous_stage is null or previous_stage != stage

)

select
    {{ dbt.hash(dbt.concat([
        "spells.customer_id", "'|'", "cast(spells.valid_from as " ~ dbt.type_string() ~ ")"
    ])) }} as spell_id,
    spells.customer_id,
    row_number() over (
        partition by spells.customer_id order by spells.valid_from
    ) as spell_number,
    spells.stage,
    lag(spells.stage) over (
        partition by spells.customer_id order by spells.valid_from
    ) as previous_stage,
    spells.valid_from,
    spells.valid_to,
    spells.valid_to is null as is_current,
    cast({{ dbt.datediff(
        'spells.valid_from',
        'coalesce(spells.valid_to, ' ~ add_days('as_of.as_of_date', 1) ~ ')',
        'day'
    ) }} as {{ dbt.type_bigint() }}) as duration_days,
    as_of.as_of_date
from spells
cross join as_of
