-- review_summary, delivery_experience and purchase_conversion: every share lies in [0, 1],
-- counts are consistent, and the totals reconcile with their inputs (nothing dropped)
with

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

reviews as (

    select * from {{ ref('review_summary') }}

),

deliveries as (

    select * from {{ ref('delivery_experience') }}

),

conversion as (

    select * from {{ ref('purchase_conversion') }}

),

shares as (

    select
        'review_summary' as model_name,
        low_rating_share as share_value
    from reviews
    union all
    select
        'review_summary' as model_name,
        late_order_share as share_value
    from reviews
    union all
    select
        'review_summary' as model_name,
        text_share as share_value
    from reviews
    union all
    select
        'delivery_experience' as model_name,
        late_share as share_value
    from deliveries
    union all
    select
        'delivery_experience' as model_name,
        late_customers_later_at_risk_share as share_value
    from deliveries
    union all
    select
        'delivery_experience' as model_name,
        on_time_customers_later_at_risk_share as share_value
    from deliveries
    union all
    select
        'purchase_conversion' as model_name,
        second_purchase_rate as share_value
    from conversion
    union all
    select
        'purchase_conversion' as model_name,
        third_after_second_rate as share_value
    from conversion

),

review_input as (

    select count(*) as reviews
    from {{ ref('stg_reviews') }} as stg_reviews
    cross join as_of
    where stg_reviews.created_date <= as_of.as_of_date

),

delivery_input as (

    select count(*) as delivered_orders
    from {{ ref('int_orders') }} as int_orders
    cross join as_of
    where int_orders.delivered_date <= as_of.as_of_date

),

buyer_input as (

    select count(distinct customer_id) as customers
    from {{ ref('int_customer_purchase_days') }}

),

model_totals as (

    select
        (select coalesce(sum(reviews.reviews), 0) from reviews) as reviews,
        (select coalesce(sum(deliveries.delivered_orders), 0) from deliveries)
            as delivered_orders,
        (select coalesce(sum(conversion.customers), 0) from conversion) as customers

),

totals as (

    select
        'review_summary' as model_name,
        model_totals.reviews as model_total,
        review_input.reviews as input_total
    from model_totals
    cross join review_input
    union all
    select
        'delivery_experience' as model_name,
        model_totals.delivered_orders as model_total,
        delivery_input.delivered_orders as input_total
    from model_totals
    cross join delivery_input
    union all
    select
        'purchase_conversion' as model_name,
        model_totals.customers as model_total,
        buyer_input.customers as input_total
    from model_totals
    cross join buyer_input

)

select
    model_name,
    'share_out_of_range' as failure
from shares
where share_value < 0 or share_value > 1

union all

select
    model_name,
    'total_does_not_reconcile' as failure
from totals
where model_total != input_total

union all

select
    'review_summary' as model_name,
    'counts_inconsistent' as failure
from reviews
where rating_1_reviews + rating_2_reviews + rating_3_reviews + rating_4_reviews
    + rating_5_reviews != reviews
    or reviews_with_order + reviews_unknown_order > reviews
    or reviews_late_order > reviews_with_order

union all

select
    'delivery_experience' as model_name,
    'counts_inconsistent' as failure
from deliveries
where late_orders > promised_orders
    or promised_orders > delivered_orders
    or delay_days_p50 > delay_days_p90
    or delay_days_p90 > delay_days_max

union all

select
    'purchase_conversion' as model_name,
    'counts_inconsistent' as failure
from conversion
where third_purchase_customers > second_purchase_customers
    or second_purchase_customers > customers
