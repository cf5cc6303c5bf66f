{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail'
    )
}}
-- depends_on: {{ ref('int_changed_customers') }}

with

-- incremental: every order of the changed customers (int_changed_customers; order_sequence
-- is per customer) and the reviews naming them (from their raw rows); delete+insert by
-- order_id (an order that changed hands leaves its former owner)
orders as (

    select * from {{ ref('stg_orders') }}
    {%- if is_incremental() %}
        where customer_id in ({{ changed_customer_ids() }})
    {%- endif %}

),

reviews as (

    {% if is_incremental() -%}
        {{ staged_reviews(
            "cast(review_id as " ~ dbt.type_string() ~ ") in (select cast(named.review_id as "
            ~ dbt.type_string() ~ ") from " ~ source('raw', 'reviews') ~ " as named where cast("
            ~ "named.order_id as " ~ dbt.type_string() ~ ") in (select orders.order_id from orders))"
        ) }}
    {%- else -%}
        select * from {{ ref('stg_reviews') }}
    {%- endif %}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

order_reviews as (

    select
        reviews.order_id,
        reviews.review_id,
        reviews.rating,
        row_number() over (
            partition by reviews.order_id
            order by reviews.created_at desc, reviews.review_id desc
        ) as review_rank
    from reviews
    cross join as_of
    where reviews.order_id is not null
        and reviews.created_date <= as_of.as_of_date

),

flagged as (

    select
        orders.*,
        as_of.as_of_date,
        cast(orders.delivered_at as date) as delivered_date,
        orders.status = 'cancelled' as is_cancelled,
        orders.status = 'returned' as is_returned,
        orders.delivered_at is not null
        or orders.status in ('delivered', 'returned') as is_delivered
    from orders
    cross join as_of
    where orders.order_date <= as_of.as_of_date

),

enriched as (

    select
        flagged.*,
        case
            when flagged.delivered_at is not null and flagged.promised_delivery_date is not null
                then {{ dbt.datediff(
                    'flagged.promised_delivery_date', 'flagged.delivered_date', 'day'
                ) }}
        end as delivery_delay_days,
        case
            when flagged.promised_delivery_date is null then false
            when flagged.delivered_at is not null
                then flagged.delivered_date > flagged.promised_delivery_date
            when flagged.is_cancelled or flagged.is_delivered then false
            else flagged.promised_delivery_date < flagged.as_of_date
        end as is_late,
        -- one decimal type on every engine (PostgreSQL would drop the scale of `0`)
        cast(case
            when flagged.is_cancelled or flagged.is_returned then 0
            else flagged.order_total
        end as decimal(18, 2)) as net_revenue,
        order_reviews.review_id,
        order_reviews.rating as review_rating
    from flagged
    left join order_reviews
        on flagged.order_id = order_reviews.order_id and order_reviews.review_rank = 1

),

sequenced as (

    select
        *,
        case
            when is_late and delivered_at is not null then delivered_date
            when is_late then {{ add_days('promised_delivery_date', 1) }}
        end as late_event_date,
        case
            when not is_cancelled
                then row_number() over (
                        partition by customer_id, is_cancelled
                        order by ordered_at, order_id
                    )
        end as order_sequence
    from enriched

)

select
    order_id,
    customer_id,
    ordered_at,
    order_date,
    updated_at,
    status,
    currency,
    order_total,
    net_revenue,
    discount_total,
    shipping_total,
    item_count,
    channel,
    promised_delivery_date,
    delivered_at,
    delivered_date,
    delivery_delay_days,
    is_delivered,
    is_late,
    late_event_date,
    is_cancelled,
    is_returned,
    review_id,
    review_rating,
    order_sequence,
    coalesce(order_sequence = 1, false) as is_first_order,
    version_count
from sequenced
