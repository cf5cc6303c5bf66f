with

customers as (

    select * from {{ ref('int_customers') }}

),

orders as (

    select * from {{ ref('int_orders') }}

),

rfm as (

    select * from {{ ref('int_customer_rfm') }}

),

-- the stored spells (customer_lifecycle_history is the view of them as of the as-of date):
-- reading them directly lets this model start before the history's data tests finish
spells as (

    select * from {{ ref('int_lifecycle_spells') }}

),

surveys as (

    select * from {{ ref('stg_surveys') }}

),

reviews as (

    select * from {{ ref('stg_reviews') }}

),

checkouts as (

    select * from {{ ref('stg_checkouts') }}

),

experience_events as (

    select * from {{ ref('int_customer_experience_events') }}

),

as_of as (

    select
        as_of_date,
        {{ add_days('as_of_date', '-' ~ var('hero_window_days')) }} as hero_window_start_date,
        {{ add_days('as_of_date', '-' ~ var('cart_abandonment_days')) }} as cart_window_start_date
    from {{ ref('int_as_of_date') }}

),

order_summary as (

    select
        orders.customer_id,
        min(orders.order_date) as first_order_date,
        max(orders.order_date) as last_order_date,
        max(orders.ordered_at) as last_ordered_at,
        count(*) as orders_count,
        sum(case when orders.is_returned then 1 else 0 end) as returned_orders_count,
        sum(orders.net_revenue) as revenue,
        sum(case when orders.is_late then 1 else 0 end) as late_orders_count,
        sum(case when orders.promised_delivery_date is not null then 1 else 0 end)
            as promised_orders_count,
        sum(
            case
                when orders.order_date > as_of.hero_window_start_date then orders.net_revenue
                else 0
            end
        ) as trailing_value
    from orders
    cross join as_of
    where not orders.is_cancelled
    group by orders.customer_id

),

cancelled_summary as (

    select
        customer_id,
        count(*) as cancelled_orders_count
    from orders
    where is_cancelled
    group by customer_id

),

latest_survey as (

    select
        surveys.customer_id,
        surveys.score,
        surveys.nps_category,
        surveys.responded_date,
        row_number() over (
            partition by surveys.customer_id
            order by surveys.responded_at desc, surveys.response_id desc
        ) as survey_rank
    from surveys
    cross join as_of
    where surveys.responded_date <= as_of.as_of_date

),

review_summary as (

    select
        reviews.customer_id,
        count(*) as reviews_count,
        avg(cast(reviews.rating as {{ type_double() }})) as mean_rating
    from reviews
    cross join as_of
    where reviews.created_date <= as_of.as_of_date
    group by reviews.customer_id

),

abandoned_carts as (

    select
        checkouts.customer_id,
        max(checkouts.started_at) as last_abandoned_at
    from checkouts
    cross join as_of
    where checkouts.is_abandoned
        and checkouts.started_date > as_of.cart_window_start_date
        and checkouts.started_date <= as_of.as_of_date
    group by checkouts.customer_id

),

negative_experiences as (

    select
        customer_id,
        max(event_date) as last_negative_experience_date
    from experience_events
    group by customer_id

),

-- the spell in force on the as-of date: started by then, not ended by then (the history's
-- is_current)
current_stage as (

    select
        spells.customer_id,
        spells.stage,
        spells.valid_from
    from spells
    cross join as_of
    where spells.valid_from <= as_of.as_of_date
        and (spells.valid_to is null or spells.valid_to > as_of.as_of_date)

),

joined as (

    select
        customers.customer_id,
        customers.has_customer_record,
        customers.signed_up_at,
        customers.known_since_date,
        customers.country,
        customers.acquisition_channel,
        order_summary.first_order_date,
        order_summary.last_order_date,
        coalesce(order_summary.orders_count, 0) as orders_count,
        coalesce(cancelled_summary.cancelled_orders_count, 0) as cancelled_orders_count,
        coalesce(order_summary.returned_orders_count, 0) as returned_orders_count,
        coalesce(order_summary.revenue, 0) as revenue,
        {{ divide_to_cents(
            'order_summary.revenue',
            'nullif(order_summary.orders_count - order_summary.returned_orders_count, 0)'
        ) }} as aov,
        cast({{ dbt.date_trunc('month', 'order_summary.first_order_date') }} as date)
            as cohort_month,
        current_stage.stage as lifecycle_stage,
        current_stage.valid_from as lifecycle_stage_since,
        rfm.recency_days,
        rfm.recency_score,
        rfm.frequency_score,
        rfm.monetary_score,
        rfm.rfm_segment,
        latest_survey.score as latest_nps_score,
        latest_survey.nps_category as latest_nps_category,
        latest_survey.responded_date as latest_nps_date,
        review_summary.mean_rating,
        coalesce(review_summary.reviews_count, 0) as reviews_count,
        cast(order_summary.late_orders_count as {{ type_double() }})
        / nullif(order_summary.promised_orders_count, 0) as late_delivery_share,
        coalesce(order_summary.trailing_value, 0) as trailing_12m_value,
        negative_experiences.last_negative_experience_date,
        abandoned_carts.last_abandoned_at,
        order_summary.last_ordered_at
    from customers
    left join order_summary on customers.customer_id = order_summary.customer_id
    left join cancelled_summary on customers.customer_id = cancelled_summary.customer_id
    left join rfm on customers.customer_id = rfm.customer_id
    left join current_stage on customers.customer_id = current_stage.customer_id
    left join latest_survey
        on customers.customer_id = latest_survey.customer_id and latest_survey.survey_rank = 1
    left join review_summary on customers.customer_id = review_summary.customer_id
    left join negative_experiences on customers.customer_id = negative_experiences.customer_id
    left join abandoned_carts on customers.customer_id = abandoned_carts.customer_id

),

flagged as (

    select
        joined.*,
        case
            when joined.trailing_12m_value > 0
                then percent_rank() over (
                        partition by joined.trailing_12m_value > 0
                        order by joined.trailing_12m_value desc
                    ) < {{ var('hero_share') }}
            else false
        end as is_hero,
        joined.last_negative_experience_date is not null as has_negative_experience,
        joined.last_abandoned_at is not null
        and (joined.last_ordered_at is null or joined.last_ordered_at < joined.last_abandoned_at)
            as is_cart_abandoner
    from joined

)

select
    cast(customer_id as varchar) as customer_id,
    has_customer_record,
    signed_up_at,
    known_since_date,
    cast(country as varchar) as country,
    cast(acquisition_channel as varchar) as acquisition_channel,
    first_order_date,
    last_order_date,
    cast(orders_count as integer) as orders_count,
    cast(cancelled_orders_count as integer) as cancelled_orders_count,
    cast(returned_orders_count as integer) as returned_orders_count,
    cast(revenue as decimal(18, 2)) as revenue,
    cast(aov as decimal(18, 2)) as aov,
    cohort_month,
    cast(lifecycle_stage as varchar) as lifecycle_stage,
    lifecycle_stage_since,
    cast(recency_days as integer) as recency_days,
    cast(recency_score as integer) as recency_score,
    cast(frequency_score as integer) as frequency_score,
    cast(monetary_score as integer) as monetary_score,
    cast(rfm_segment as varchar) as rfm_segment,
    cast(latest_nps_score as integer) as latest_nps_score,
    cast(latest_nps_category as varchar) as latest_nps_category,
    latest_nps_date,
    cast(mean_rating as {{ type_double() }}) as mean_rating,
    cast(reviews_count as integer) as reviews_count,
    cast(late_delivery_share as {{ type_double() }}) as late_delivery_share,
    cast(trailing_12m_value as decimal(18, 2)) as trailing_12m_value,
    is_hero,
    has_negative_experience,
    last_negative_experience_date,
    is_cart_abandoner,
    cast(last_abandoned_at as date) as last_abandoned_date
from flagged
