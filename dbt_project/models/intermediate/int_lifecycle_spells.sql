{{
    config(
        materialized='incremental',
        unique_key='customer_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_customers() }}"
    )
}}
{%- set new_days = var('new_days') -%}
{%- set lapsed_days = var('lapsed_days') %}
-- depends_on: {{ ref('int_changed_customers') }}

with

{% if is_incremental() -%}
-- customers whose spells can change: the changed customers (int_changed_customers; the
-- pre-hook deletes their spells first), and the customers whose first purchase falls in a
-- month whose population gap is recomputed. unique_key customer_id + delete+insert replaces
-- all their spells. Time alone never changes a stored spell (scheduled spells are stored ahead).
changed_customers as (

    {{ changed_customer_ids() }}

    union

    select customer_id
    from {{ this }}
    where stage = 'new'
        and valid_from >= {{ lifecycle_recompute_from() }}

),

{% endif -%}

customers as (

    select * from {{ ref('int_customers') }}
    {% if is_incremental() -%}
        where customer_id in (select changed_customers.customer_id from changed_customers)
    {%- endif %}

),

purchase_days as (

    select * from {{ ref('int_customer_purchase_days') }}
    {% if is_incremental() -%}
        where customer_id in (select changed_customers.customer_id from changed_customers)
    {%- endif %}

),

population_gaps as (

    select * from {{ ref('int_population_gap_monthly') }}

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

-- one-time buyers so far (no own gap) fall back on the population gap of the purchase month
purchase_points as (

    select
        windows.customer_id,
        windows.purchase_date,
        case
            when windows.window_start_date = windows.first_purchase_date then 'new'
            else 'reactivated'
        end as window_stage,
        {{ add_days('windows.window_start_date', new_days) }} as window_end_date,
        windows.next_purchase_date as horizon_date,
        {{ add_days('windows.purchase_date', lapsed_days) }} as lapsed_date,
        cast(ceil(
            {{ var('at_risk_gap_multiple') }} * greatest(
                coalesce(
                    windows.mean_gap_days,
                    population_gaps.population_gap_days,
                    {{ var('default_population_gap_days') }}
                ),
                {{ var('at_risk_min_gap_days') }}
            )
        ) as {{ dbt.type_int() }}) as at_risk_after_days
    from windows
    left join population_gaps
        on cast({{ dbt.date_trunc('month', 'windows.purchase_date') }} as date)
            = population_gaps.month_start

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

-- change points up to the next purchase day; after the last purchase day every scheduled
-- point is kept, also those after the as-of date (customer_lifecycle_history hides them)
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
        and (horizon_date is null or window_end_date < horizon_date)

    union all

    select
        customer_id,
        at_risk_date as change_date,
        'at_risk' as stage
    from scheduled
    where at_risk_date < lapsed_date
        and (horizon_date is null or at_risk_date < horizon_date)

    union all

    select
        customer_id,
        lapsed_date as change_date,
        'lapsed' as stage
    from scheduled
    where horizon_date is null or lapsed_date < horizon_date

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
        change_date as valid_from,
        lead(change_date) over (partition by customer_id order by change_date) as valid_to
    from collapsed
    where previous_stage is null or previous_stage != stage

)

select
    {{ dbt.hash(dbt.concat([
        "customer_id", "'|'", "cast(valid_from as " ~ dbt.type_string() ~ ")"
    ])) }} as spell_id,
    customer_id,
    cast(
        row_number() over (partition by customer_id order by valid_from)
        as {{ dbt.type_bigint() }}
    ) as spell_number,
    stage,
    lag(stage) over (partition by customer_id order by valid_from) as previous_stage,
    valid_from,
    valid_to
from spells
