{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_landed_in_window() }}"
    )
}}
-- every CDC version of every order (SQL shared with incremental models: macros/staging.sql).
-- A table, not a view: its data tests, stg_orders and int_data_quality_events read it, and a
-- view would recompute the deduplication of every version ever landed once per reader.
-- incremental: every version of the orders with a raw row landed in the window, delete+insert
-- by order_id; the pre-hook first deletes the stored versions landed in the window (a
-- re-loaded partition may have lost some).
{% if is_incremental() -%}
    {{ staged_order_events(
        "cast(order_id as " ~ dbt.type_string() ~ ") in (select cast(landed.order_id as "
        ~ dbt.type_string() ~ ") from " ~ source('raw', 'orders') ~ " as landed where "
        ~ "landed._partition_date >= " ~ lifecycle_window_start() ~ ")"
    ) }}
{%- else -%}
    {{ staged_order_events() }}
{%- endif %}
