{% macro lifecycle_window_start() -%}
    {#-
        First landing partition an incremental run re-reads, as a SQL date expression:
        min_date - var('lookback_days'), min_date being var('min_date') or else the environment
        variable LIFECYCLE_MIN_DATE (what Dagster sets: a changed env var re-parses only the
        files that read it, a changed --vars re-parses the whole project). Without either (dbt
        run by hand, or a Dagster run that loaded nothing) the newest raw.orders partition
        stands in for min_date, so a run re-processes the last lookback_days of partitions
        (idempotent).
    -#}
    {%- set min_date = lifecycle_min_date() -%}
    {%- set lookback = var('lookback_days') | int -%}
    {%- if min_date -%}
        {{ add_days("cast('" ~ min_date ~ "' as date)", -lookback) }}
    {%- else -%}
        {{ add_days(
            "(select max(_partition_date) from " ~ source('raw', 'orders') ~ ")", -lookback
        ) }}
    {%- endif -%}
{%- endmacro %}


{% macro lifecycle_min_date() -%}
    {#-
        The first day the run loaded (YYYY-MM-DD) from var('min_date'), else from the
        environment variable LIFECYCLE_MIN_DATE; none when neither is set.
    -#}
    {%- set min_date = var('min_date', none) -%}
    {%- if min_date is none or min_date | string | trim == '' -%}
        {%- set min_date = env_var('LIFECYCLE_MIN_DATE', '') -%}
    {%- endif -%}
    {%- set min_date = min_date | string | trim -%}
    {%- if min_date and min_date | length != 10 -%}
        {{ exceptions.raise_compiler_error('min_date must be YYYY-MM-DD, got ' ~ min_date) }}
    {%- endif -%}
    {{ return(min_date or none) }}
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


{% macro delete_landed_in_window(column_name='partition_date') -%}
    {#-
        Pre-hook of the incremental staging tables: an incremental run first deletes the rows
        whose landing partition (column_name) is in the window, then inserts the rebuilt keys
        (a re-loaded partition may have lost a row that delete+insert alone would keep).
        Nothing on a full refresh.
    -#}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ column_name }} >= {{ lifecycle_window_start() }}
    {%- endif -%}
{%- endmacro %}


{% macro delete_rebuilt_data_quality_events() -%}
    {#-
        Pre-hook of int_data_quality_events: an incremental run first deletes the issues it
        recomputes: those counted on a partition in the window, and every issue about an
        unknown key (recomputed whole each run). Nothing on a full refresh.
    -#}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where partition_date >= {{ lifecycle_window_start() }}
            or issue_type not in (
                'duplicate_landing', 'duplicate_order_version', 'stale_order_version'
            )
    {%- endif -%}
{%- endmacro %}


{% macro delete_checkouts_no_longer_landed() -%}
    {#-
        Pre-hook of stg_checkouts: an incremental run first deletes the checkouts without any
        row left in raw.checkouts (a re-loaded partition may have dropped one; delete+insert
        only replaces the keys it inserts). Nothing on a full refresh.
    -#}
    {%- if is_incremental() -%}
        delete from {{ this }} as stored
        where not exists (
            select 1
            from {{ source('raw', 'checkouts') }} as landed
            where cast(landed.checkout_id as {{ dbt.type_string() }}) = stored.checkout_id
        )
    {%- endif -%}
{%- endmacro %}
