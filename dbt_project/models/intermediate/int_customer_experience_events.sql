{%- set window_days = var('negative_experience_days') -%}

with

orders as (

    select * from {{ ref('int_orders') }}

),

surveys as (

    select * from {{ ref('stg_surveys') }}

),

reviews as (

    select * from {{ ref('stg_reviews') }}

),

as_of as (

    select
        as_of_date,
        {{ add_days('as_of_date', '-' ~ window_days) }} as window_start_date
    from {{ ref('int_as_of_date') }}

),

events as (

    select
        customer_id,
        late_event_date as event_date,
        'late_delivery' as event_kind,
        order_id as source_id,
        cast(delivery_delay_days as {{ dbt.type_int() }}) as event_value
    from orders
    where is_late

    union all

    select
        customer_id,
        responded_date as event_date,
        'detractor_score' as event_kind,
        response_id as source_id,
        score as event_value
    from surveys
    where nps_category = 'detractor'

    union all

    select
        customer_id,
        created_date as event_date,
        'low_rating' as event_kind,
        review_id as source_id,
        rating as event_value
    from reviews
    where rating <= {{ var('negative_rating_max') }}

)

select
    events.customer_id,
    events.event_date,
    events.event_kind,
    events.source_id,
    events.event_value,
    case
        when events.event_kind = 'late_delivery'
            then {{ dbt.concat([
                "'late_delivery_'",
                "cast(events.event_date as " ~ dbt.type_string() ~ ")"
            ]) }}
        else {{ dbt.concat([
            "events.event_kind",
            "'_'",
            "cast(events.event_value as " ~ dbt.type_string() ~ ")"
        ]) }}
    end as reason
from events
cross join as_of
where events.event_date > as_of.window_start_date
    and events.event_date <= as_of.as_of_date
