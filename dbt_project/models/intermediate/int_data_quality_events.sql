-- a table, not a view: its data tests, data_quality_issues and the reconciliation test read it
-- (a view would re-run these history-wide checks once per reader)
{{ config(materialized='table') }}

-- one row per landed record that breaks a data-quality expectation, with the partition it
-- landed in; the handling rule of every issue type is documented in
-- int_data_quality_events.yml and dbt_project/README.md. Nothing here changes what the marts
-- keep: this model only counts.
with

raw_orders as (

    select * from {{ source('raw', 'orders') }}

),

raw_customers as (

    select * from {{ source('raw', 'customers') }}

),

raw_reviews as (

    select * from {{ source('raw', 'reviews') }}

),

raw_surveys as (

    select * from {{ source('raw', 'surveys') }}

),

raw_checkouts as (

    select * from {{ source('raw', 'checkouts') }}

),

order_events as (

    select * from {{ ref('stg_order_events') }}

),

orders as (

    select * from {{ ref('stg_orders') }}

),

customer_records as (

    select * from {{ ref('stg_customers') }}

),

known_customers as (

    select * from {{ ref('int_customers') }}

),

reviews as (

    select * from {{ ref('stg_reviews') }}

),

surveys as (

    select * from {{ ref('stg_surveys') }}

),

checkouts as (

    select * from {{ ref('stg_checkouts') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

-- records landed again under the same key (any source but orders, whose versions are CDC):
-- every landing after the first is counted on its own partition; the latest landing wins
landings as (

    select
        'customers' as source_name,
        cast(customer_id as {{ dbt.type_string() }}) as record_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        _partition_date as partition_date,
        _row_number as source_row_number
    from raw_customers

    union all

    select
        'reviews' as source_name,
        cast(review_id as {{ dbt.type_string() }}) as record_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        _partition_date as partition_date,
        _row_number as source_row_number
    from raw_reviews

    union all

    select
        'surveys' as source_name,
        cast(response_id as {{ dbt.type_string() }}) as record_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        _partition_date as partition_date,
        _row_number as source_row_number
    from raw_surveys

    union all

    select
        'checkouts' as source_name,
        cast(checkout_id as {{ dbt.type_string() }}) as record_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        _partition_date as partition_date,
        _row_number as source_row_number
    from raw_checkouts

),

ranked_landings as (

    select
        *,
        row_number() over (
            partition by source_name, record_id
            order by partition_date, source_row_number
        ) as landing_number
    from landings

),

first_landings as (

    select
        source_name,
        record_id,
        partition_date
    from ranked_landings
    where landing_number = 1

),

order_first_landings as (

    select
        order_id,
        min(partition_date) as partition_date
    from order_events
    group by order_id

),

-- an order version landing after a version with a later updated_at is stale: kept in
-- stg_order_events, but the latest updated_at wins in stg_orders
order_versions as (

    select
        order_id,
        customer_id,
        updated_at,
        partition_date,
        max(updated_at) over (
            partition by order_id
            order by partition_date, source_row_number
            rows between unbounded preceding and 1 preceding
        ) as previous_max_updated_at
    from order_events

),

issues as (

    select
        'duplicate_landing' as issue_type,
        source_name,
        record_id,
        customer_id,
        partition_date
    from ranked_landings
    where landing_number > 1

    union all

    -- raw order rows without a stg_order_events row are exact copies of a landed version
    select
        'duplicate_order_version' as issue_type,
        'orders' as source_name,
        cast(raw_orders.order_id as {{ dbt.type_string() }}) as record_id,
        cast(raw_orders.customer_id as {{ dbt.type_string() }}) as customer_id,
        raw_orders._partition_date as partition_date
    from raw_orders
    left join order_events
        on
            cast(raw_orders.order_id as {{ dbt.type_string() }}) = order_events.order_id
            and raw_orders._partition_date = order_events.partition_date
            and raw_orders._row_number = order_events.source_row_number
    where order_events.order_id is null

    union all

    select
        'stale_order_version' as issue_type,
        'orders' as source_name,
        order_id as record_id,
        customer_id,
        partition_date
    from order_versions
    where updated_at < previous_max_updated_at

    union all

    select
        'order_unknown_customer' as issue_type,
        'orders' as source_name,
        orders.order_id as record_id,
        orders.customer_id,
        order_first_landings.partition_date
    from orders
    inner join order_first_landings on orders.order_id = order_first_landings.order_id
    left join customer_records on orders.customer_id = customer_records.customer_id
    where customer_records.customer_id is null

    union all

    select
        'review_unknown_order' as issue_type,
        'reviews' as source_name,
        reviews.review_id as record_id,
        reviews.customer_id,
        first_landings.partition_date
    from reviews
    inner join first_landings
        on first_landings.source_name = 'reviews' and reviews.review_id = first_landings.record_id
    left join orders on reviews.order_id = orders.order_id
    where reviews.order_id is not null and orders.order_id is null

    union all

    select
        'review_unknown_customer' as issue_type,
        'reviews' as source_name,
        reviews.review_id as record_id,
        reviews.customer_id,
        first_landings.partition_date
    from reviews
    inner join first_landings
        on first_landings.source_name = 'reviews' and reviews.review_id = first_landings.record_id
    left join known_customers on reviews.customer_id = known_customers.customer_id
    where known_customers.customer_id is null

    union all

    select
        'survey_unknown_customer' as issue_type,
        'surveys' as source_name,
        surveys.response_id as record_id,
        surveys.customer_id,
        first_landings.partition_date
    from surveys
    inner join first_landings
        on
            first_landings.source_name = 'surveys'
            and surveys.response_id = first_landings.record_id
    left join known_customers on surveys.customer_id = known_customers.customer_id
    where known_customers.customer_id is null

    union all

    select
        'checkout_unknown_customer' as issue_type,
        'checkouts' as source_name,
        checkouts.checkout_id as record_id,
        checkouts.customer_id,
        first_landings.partition_date
    from checkouts
    inner join first_landings
        on
            first_landings.source_name = 'checkouts'
            and checkouts.checkout_id = first_landings.record_id
    left join known_customers on checkouts.customer_id = known_customers.customer_id
    where known_customers.customer_id is null

    union all

    select
        'checkout_unknown_order' as issue_type,
        'checkouts' as source_name,
        checkouts.checkout_id as record_id,
        checkouts.customer_id,
        first_landings.partition_date
    from checkouts
    inner join first_landings
        on
            first_landings.source_name = 'checkouts'
            and checkouts.checkout_id = first_landings.record_id
    left join orders on checkouts.completed_order_id = orders.order_id
    where checkouts.completed_order_id is not null and orders.order_id is null

)

-- only what had landed by the as-of date, like every other model
select issues.*
from issues
cross join as_of
where issues.partition_date <= as_of.as_of_date
