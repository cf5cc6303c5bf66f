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
        date of any order with a version landed in the window (a late cancellation or a new
        order changes purchase days from that date on) and the sign-up date of any customer row
        landed in the window. Month granularity because the population gap of one-time buyers
        is fixed per calendar month (int_population_gap_monthly).
    -#}
    (
        select cast({{ dbt.date_trunc('month', 'min(changed_date)') }} as date)
        from (
            select {{ lifecycle_window_start() }} as changed_date
            union all
            select cast(ordered_at as date) as changed_date
            from {{ source('raw', 'orders') }}
            where _partition_date >= {{ lifecycle_window_start() }}
            union all
            select cast(signed_up_at as date) as changed_date
            from {{ source('raw', 'customers') }}
            where _partition_date >= {{ lifecycle_window_start() }}
        ) as changes
    )
{%- endmacro %}
