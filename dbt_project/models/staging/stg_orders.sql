{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_landed_in_window() }}"
    )
}}
-- the latest version of every order (SQL shared with incremental models: macros/staging.sql).
-- A table, not a view, for the same reason as stg_order_events.
-- incremental: the orders with a version landed in the window, and the orders with no row left
-- here (the pre-hook first deletes the orders whose latest version landed in the window: that
-- version may be gone from a re-loaded partition); delete+insert by order_id.
{% if is_incremental() -%}
    {%- set rebuilt_events -%}
        (
            select order_events.*
            from {{ ref('stg_order_events') }} as order_events
            left join {{ this }} as stored on order_events.order_id = stored.order_id
            where stored.order_id is null
                or order_events.order_id in (
                    select landed.order_id
                    from {{ ref('stg_order_events') }} as landed
                    where landed.partition_date >= {{ lifecycle_window_start() }}
                )
        ) as rebuilt_events
    {%- endset -%}
    {{ staged_orders(rebuilt_events) }}
{%- else -%}
    {{ staged_orders(ref('stg_order_events')) }}
{%- endif %}
