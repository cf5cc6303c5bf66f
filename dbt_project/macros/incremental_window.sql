{% macro lifecycle_window_start() -%}
    {#-
        First landing partition an incremental run re-reads, as a SQL date expression:
        var('min_date') - var('lookback_days'). Without min_date (dbt run by hand, or a Dagster
        run that loaded nothing) the newest raw.orders partition stands in for min_date, so a
        run without vars re-processes the last lookback_days of partitions (idempotent).
    -#}
    {%- set min_date = var('min_date', none) -%}
    {%- set lookback = var('lookback_days') | int -%}
    {%- if min_date is not none and min_date | string | trim != '' -%}
        {{ add_days("cast('" ~ (min_date | string | trim) ~ "' as date)", -lookback) }}
    {%- else -%}
        {{ add_days(
            "(select max(_partition_date) from " ~ source('raw', 'orders') ~ ")", -lookback
        ) }}
    {%- endif -%}
{%- endmacro %}


{% macro lifecycle_recompute_from() -%}
    {#-
        First day whose derived lifecycle facts an incremental run may change, as a SQL date
        expression: the first day of the month of the earliest of the window start, the order
        date of every version of any order with a version landed in the window (a late
        cancellation, a new order or a corrected order date changes purchase days from that
        date on) and the sign-up date of every landing of any customer landed in the window.
        Month granularity because the population gap of one-time buyers is fixed per calendar
        month (int_population_gap_monthly).
    -#}
    (
        select cast({{ dbt.date_trunc('month', 'min(changed_date)') }} as date)
        from (
            select {{ lifecycle_window_start() }} as changed_date
            union all
            select cast(versions.ordered_at as date) as changed_date
            from {{ source('raw', 'orders') }} as versions
            where versions.order_id in (
                select landed.order_id
                from {{ source('raw', 'orders') }} as landed
                where landed._partition_date >= {{ lifecycle_window_start() }}
            )
            union all
            select cast(versions.signed_up_at as date) as changed_date
            from {{ source('raw', 'customers') }} as versions
            where versions.customer_id in (
                select landed.customer_id
                from {{ source('raw', 'customers') }} as landed
                where landed._partition_date >= {{ lifecycle_window_start() }}
            )
        ) as changes
    )
{%- endmacro %}


{% macro changed_customer_ids() -%}
    {#- Query returning the customer_id of every customer an incremental run recomputes. -#}
    select changed.customer_id from {{ ref('int_changed_customers') }} as changed
{%- endmacro %}


{% macro delete_changed_customers() -%}
    {#-
        Pre-hook of the models keyed by customer: an incremental run first deletes every row of
        the changed customers, then inserts their recomputed rows (delete+insert by unique_key
        alone would keep the rows of a customer who no longer has any, e.g. a purchase day
        whose only order was cancelled). Nothing on a full refresh.
    -#}
    {%- if is_incremental() -%}
        delete from {{ this }} where customer_id in ({{ changed_customer_ids() }})
    {%- endif -%}
{%- endmacro %}
