{% macro month_of(date_expression) -%}
    cast({{ dbt.date_trunc('month', date_expression) }} as date)
{%- endmacro %}


{% macro nps_month_is_rebuilt(month_expression) -%}
    {#-
        True for the response months an incremental run of nps_monthly rebuilds: every month
        from the first month whose lifecycle stages can change (macro lifecycle_recompute_from:
        stages change from the earliest changed order / sign-up date on), the months of every
        version of an answer landed in the window or dated in it, and the months of the answers
        of customers whose customers row landed in the window (their acquisition channel).
    -#}
    {%- set window_start = lifecycle_window_start() -%}
    (
        {{ month_expression }} >= {{ lifecycle_recompute_from() }}
        or {{ month_expression }} in (
            select {{ month_of('versions.responded_at') }}
            from {{ source('raw', 'surveys') }} as versions
            where versions.response_id in (
                select landed.response_id
                from {{ source('raw', 'surveys') }} as landed
                where landed._partition_date >= {{ window_start }}
                    or cast(landed.responded_at as date) >= {{ window_start }}
            )
                or versions.customer_id in (
                    select landed.customer_id
                    from {{ source('raw', 'customers') }} as landed
                    where landed._partition_date >= {{ window_start }}
                )
        )
    )
{%- endmacro %}


{% macro delete_rebuilt_months(predicate) -%}
    {#-
        Pre-hook of the incremental monthly marts: an incremental run first deletes the months
        it rebuilds (predicate: SQL on the mart's month column), then inserts them (a month, or
        a dimension value in it, may have no row left). Nothing on a full refresh.
    -#}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ predicate }}
    {%- endif -%}
{%- endmacro %}


{% macro review_month_is_rebuilt(month_expression) -%}
    {#-
        True for the review months an incremental run of review_summary rebuilds: the months
        of every version of a review landed in the window or dated in it, and of the reviews
        naming an order whose row can change (a version landed in the window, placed in it, or
        a promised date the as-of date may just have passed: lateness).
    -#}
    {%- set window_start = lifecycle_window_start() -%}
    {{ month_expression }} in (
        select {{ month_of('versions.created_at') }}
        from {{ source('raw', 'reviews') }} as versions
        where versions.review_id in (
            select landed.review_id
            from {{ source('raw', 'reviews') }} as landed
            where landed._partition_date >= {{ window_start }}
                or cast(landed.created_at as date) >= {{ window_start }}
        )
            or versions.order_id in (
                select changed.order_id
                from {{ source('raw', 'orders') }} as changed
                where changed._partition_date >= {{ window_start }}
                    or cast(changed.ordered_at as date) >= {{ window_start }}
                    or changed.promised_delivery_date >= {{ add_days(window_start, -1) }}
            )
    )
{%- endmacro %}
