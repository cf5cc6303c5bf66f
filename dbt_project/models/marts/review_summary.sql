{%- set low_rating_max = var('negative_rating_max') -%}

{{
    config(
        materialized='incremental',
        unique_key='review_month',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_rebuilt_months(review_month_is_rebuilt('review_month')) }}"
    )
}}
-- depends_on: {{ ref('stg_reviews') }}

with

-- incremental: the reviews of the months whose rows can change (macro
-- review_month_is_rebuilt), from their raw rows; the pre-hook deletes those months first
reviews as (

    {% if is_incremental() -%}
        select *
        from ({{ staged_reviews(
            "review_id in (select months.review_id from " ~ source('raw', 'reviews')
            ~ " as months where " ~ review_month_is_rebuilt(month_of('months.created_at')) ~ ")"
        ) }}) as rebuilt_reviews
        where {{ review_month_is_rebuilt(month_of('rebuilt_reviews.created_date')) }}
    {%- else -%}
        select * from {{ ref('stg_reviews') }}
    {%- endif %}

),

orders as (

    select * from {{ ref('int_orders') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

-- every review up to the as-of date, with the delivery outcome of the order it names (reviews
-- of unknown orders and reviews without an order are kept, with no order outcome)
reviewed as (

    select
        cast({{ dbt.date_trunc('month', 'reviews.created_date') }} as date) as review_month,
        reviews.rating,
        reviews.has_body,
        reviews.order_id is not null and orders.order_id is null as is_unknown_order,
        orders.order_id is not null as has_order,
        orders.is_late
    from reviews
    cross join as_of
    left join orders on reviews.order_id = orders.order_id
    where reviews.created_date <= as_of.as_of_date

),

monthly as (

    select
        review_month,
        count(*) as reviews,
        avg(cast(rating as {{ type_double() }})) as mean_rating,
        sum(case when rating = 1 then 1 else 0 end) as rating_1_reviews,
        sum(case when rating = 2 then 1 else 0 end) as rating_2_reviews,
        sum(case when rating = 3 then 1 else 0 end) as rating_3_reviews,
        sum(case when rating = 4 then 1 else 0 end) as rating_4_reviews,
        sum(case when rating = 5 then 1 else 0 end) as rating_5_reviews,
        sum(case when rating <= {{ low_rating_max }} then 1 else 0 end) as low_rating_reviews,
        sum(case when has_body then 1 else 0 end) as reviews_with_text,
        sum(case when has_order then 1 else 0 end) as reviews_with_order,
        sum(case when is_unknown_order then 1 else 0 end) as reviews_unknown_order,
        sum(case when is_late then 1 else 0 end) as reviews_late_order,
        avg(case when is_late then cast(rating as {{ type_double() }}) end)
            as mean_rating_late_order,
        avg(case when not is_late then cast(rating as {{ type_double() }}) end)
            as mean_rating_on_time_order
    from reviewed
    group by review_month

)

select
    review_month,
    cast(reviews as bigint) as reviews,
    cast(mean_rating as {{ type_double() }}) as mean_rating,
    cast(rating_1_reviews as bigint) as rating_1_reviews,
    cast(rating_2_reviews as bigint) as rating_2_reviews,
    cast(rating_3_reviews as bigint) as rating_3_reviews,
    cast(rating_4_reviews as bigint) as rating_4_reviews,
    cast(rating_5_reviews as bigint) as rating_5_reviews,
    cast(low_rating_reviews as {{ type_double() }}) / reviews as low_rating_share,
    cast(reviews_with_text as {{ type_double() }}) / reviews as text_share,
    cast(reviews_with_order as bigint) as reviews_with_order,
    cast(reviews_unknown_order as bigint) as reviews_unknown_order,
    cast(reviews_late_order as bigint) as reviews_late_order,
    cast(reviews_late_order as {{ type_double() }})
    / nullif(reviews_with_order, 0) as late_order_share,
    cast(mean_rating_late_order as {{ type_double() }}) as mean_rating_late_order,
    cast(mean_rating_on_time_order as {{ type_double() }}) as mean_rating_on_time_order
from monthly
