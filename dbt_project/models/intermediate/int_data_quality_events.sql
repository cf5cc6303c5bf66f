-- incremental: issues counted on the landing partition of the repeated row (duplicates, stale
-- versions) depend only on that row and the rows landed before it, so a run recomputes those of
-- the partitions in the window only; issues about unknown keys can appear or vanish in any
-- partition (a customers row landing today resolves an old order's unknown customer), so every
-- run recomputes them all, from the records that name an unknown key only. The pre-hook first
-- deletes both (macro delete_rebuilt_data_quality_events), then the rows are appended.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_rebuilt_data_quality_events() }}"
    )
}}
-- one row per landed record that breaks a data-quality expectation, with the partition it
-- landed in; the handling rule of every issue type is documented in
-- int_data_quality_events.yml and dbt_project/README.md. Nothing here changes what the marts
-- keep: this model only counts.
{%- set window_start = lifecycle_window_start() if is_incremental() else none %}

with

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

-- records landed again under the same key (any source but orders, whose versions are CDC):
-- every landing after the first is counted on its own partition; the latest landing wins.
-- incremental: every landing of the keys with a landing in the window (the issues of the
-- landings in the window are kept)
{%- set landing_sources = [
    ('customers', 'customer_id'),
    ('reviews', 'review_id'),
    ('surveys', 'response_id'),
    ('checkouts', 'checkout_id'),
] %}
landings as (

    {% for source_name, key in landing_sources -%}
        select
            '{{ source_name }}' as source_name,
            cast({{ key }} as {{ dbt.type_string() }}) as record_id,
            cast(customer_id as {{ dbt.type_string() }}) as customer_id,
            _partition_date as partition_date,
            _row_number as source_row_number
        from {{ source('raw', source_name) }}
        {%- if window_start %}
            where {{ key }} in (
                select landed.{{ key }}
                from {{ source('raw', source_name) }} as landed
                where landed._partition_date >= {{ window_start }}
            )
        {%- endif %}
        {% if not loop.last %}

            union all

        {% endif %}
    {%- endfor %}

),

ranked_landings as (

    select
        *,
        row_number() over (
            partition by source_name, record_id
            order by partition_date, source_row_number
        ) as landing_number
    from landings

),

-- an order version landing after a version with a later updated_at is stale: kept in
-- stg_order_events, but the latest updated_at wins in stg_orders.
-- incremental: every version of the orders with a version landed in the window (the issues of
-- the versions in the window are kept)
order_versions as (

    select
        order_id,
        customer_id,
        updated_at,
        partition_date,
        max(updated_at) over (
            partition by order_id
            order by partition_date, source_row_number
            rows between unbounded preceding and 1 preceding
        ) as previous_max_updated_at
    from {{ ref('stg_order_events') }}
    {%- if window_start %}
        where order_id in (
            select landed.order_id
            from {{ ref('stg_order_events') }} as landed
            where landed.partition_date >= {{ window_start }}
        )
    {%- endif %}

),

raw_orders as (

    select * from {{ source('raw', 'orders') }}
    {%- if window_start %}
        where _partition_date >= {{ window_start }}
    {%- endif %}

),

order_events as (

    select * from {{ ref('stg_order_events') }}
    {%- if window_start %}
        where partition_date >= {{ window_start }}
    {%- endif %}

),

-- issues counted on the partition of the repeated row
repeated_rows as (

    select
        'duplicate_landing' as issue_type,
        source_name,
        record_id,
        customer_id,
        partition_date
    from ranked_landings
    where landing_number > 1
    {%- if window_start %}
        and partition_date >= {{ window_start }}
    {%- endif %}

    union all

    -- raw order rows without a stg_order_events row are exact copies of a landed version
    select
        'duplicate_order_version' as issue_type,
        'orders' as source_name,
        cast(raw_orders.order_id as {{ dbt.type_string() }}) as record_id,
        cast(raw_orders.customer_id as {{ dbt.type_string() }}) as customer_id,
        raw_orders._partition_date as partition_date
    from raw_orders
    left join order_events
        on
            cast(raw_orders.order_id as {{ dbt.type_string() }}) = order_events.order_id
            and raw_orders._partition_date = order_events.partition_date
            and raw_orders._row_number = order_events.source_row_number
    where order_events.order_id is null

    union all

    select
        'stale_order_version' as issue_type,
        'orders' as source_name,
        order_id as record_id,
        customer_id,
        partition_date
    from order_versions
    where updated_at < previous_max_updated_at
    {%- if window_start %}
        and partition_date >= {{ window_start }}
    {%- endif %}

),

orders as (

    select * from {{ ref('stg_orders') }}

),

customer_records as (

    select * from {{ ref('stg_customers') }}

),

known_customers as (

    select * from {{ ref('int_customers') }}

),

reviews as (

    select * from {{ ref('stg_reviews') }}

),

surveys as (

    select * from {{ ref('stg_surveys') }}

),

checkouts as (

    select * from {{ ref('stg_checkouts') }}

),

-- records naming a key that never landed (their latest landing / version names it)
unknown_keys as (

    select
        'order_unknown_customer' as issue_type,
        'orders' as source_name,
        orders.order_id as record_id,
        orders.customer_id
    from orders
    left join customer_records on orders.customer_id = customer_records.customer_id
    where customer_records.customer_id is null

    union all

    select
        'review_unknown_order' as issue_type,
        'reviews' as source_name,
        reviews.review_id as record_id,
        reviews.customer_id
    from reviews
    left join orders on reviews.order_id = orders.order_id
    where reviews.order_id is not null and orders.order_id is null

    union all

    select
        'review_unknown_customer' as issue_type,
        'reviews' as source_name,
        reviews.review_id as record_id,
        reviews.customer_id
    from reviews
    left join known_customers on reviews.customer_id = known_customers.customer_id
    where known_customers.customer_id is null

    union all

    select
        'survey_unknown_customer' as issue_type,
        'surveys' as source_name,
        surveys.response_id as record_id,
        surveys.customer_id
    from surveys
    left join known_customers on surveys.customer_id = known_customers.customer_id
    where known_customers.customer_id is null

    union all

    select
        'checkout_unknown_customer' as issue_type,
        'checkouts' as source_name,
        checkouts.checkout_id as record_id,
        checkouts.customer_id
    from checkouts
    left join known_customers on checkouts.customer_id = known_customers.customer_id
    where known_customers.customer_id is null

    union all

    select
        'checkout_unknown_order' as issue_type,
        'checkouts' as source_name,
        checkouts.checkout_id as record_id,
        checkouts.customer_id
    from checkouts
    left join orders on checkouts.completed_order_id = orders.order_id
    where checkouts.completed_order_id is not null and orders.order_id is null

),

-- the first landing of each such record, where its issue is counted (read for them only)
first_landings as (

    select
        'orders' as source_name,
        order_id as record_id,
        min(partition_date) as partition_date
    from {{ ref('stg_order_events') }}
    where order_id in (
            select unknown_keys.record_id
            from unknown_keys
            where unknown_keys.source_name = 'orders'
        )
    group by order_id

    {%- for source_name, id_column in [
        ('reviews', 'review_id'), ('surveys', 'response_id'), ('checkouts', 'checkout_id')
    ] %}

        union all

        select
            '{{ source_name }}' as source_name,
            cast({{ id_column }} as {{ dbt.type_string() }}) as record_id,
            min(_partition_date) as partition_date
        from {{ source('raw', source_name) }}
        where cast({{ id_column }} as {{ dbt.type_string() }}) in (
                select unknown_keys.record_id
                from unknown_keys
                where unknown_keys.source_name = '{{ source_name }}'
            )
        group by cast({{ id_column }} as {{ dbt.type_string() }})
    {%- endfor %}

),

issues as (

    select * from repeated_rows

    union all

    select
        unknown_keys.issue_type,
        unknown_keys.source_name,
        unknown_keys.record_id,
        unknown_keys.customer_id,
        first_landings.partition_date
    from unknown_keys
    inner join first_landings
        on
            unknown_keys.source_name = first_landings.source_name
            and unknown_keys.record_id = first_landings.record_id

)

-- only what had landed by the as-of date, like every other model
select issues.*
from issues
cross join as_of
where issues.partition_date <= as_of.as_of_date
