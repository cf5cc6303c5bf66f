{{
    config(
        materialized='incremental',
        unique_key='checkout_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_checkouts_no_longer_landed() }}"
    )
}}
-- a table, not a view: dim_customers, int_data_quality_events and its data tests read it (a
-- view would recompute the latest landing of every checkout once per reader).
-- incremental: the checkouts with a landing in the window, from their raw rows; delete+insert
-- by checkout_id (the pre-hook first deletes checkouts with no raw row left, e.g. after a
-- partition was re-loaded without them)
with

ranked as (

    {% if is_incremental() -%}
        {{ latest_landing(
            'checkouts',
            'checkout_id',
            "checkout_id in (select landed.checkout_id from " ~ source('raw', 'checkouts')
            ~ " as landed where landed._partition_date >= " ~ lifecycle_window_start() ~ ")"
        ) }}
    {%- else -%}
        {{ latest_landing('checkouts', 'checkout_id') }}
    {%- endif %}

)

select
    cast(checkout_id as {{ dbt.type_string() }}) as checkout_id,
    cast(customer_id as {{ dbt.type_string() }}) as customer_id,
    cast(started_at as {{ dbt.type_timestamp() }}) as started_at,
    cast(started_at as date) as started_date,
    cart_value,
    cast(completed_order_id as {{ dbt.type_string() }}) as completed_order_id,
    completed_order_id is null as is_abandoned
from ranked
