-- data_quality_issues counts what the marts show: orders of customers without a customers
-- record, and reviews naming an order that never landed
with

issues as (

    select
        issue_type,
        sum(records) as records
    from {{ ref('data_quality_issues') }}
    group by issue_type

),

orders_without_record as (

    select count(*) as records
    from {{ ref('int_orders') }} as int_orders
    inner join {{ ref('dim_customers') }} as dim_customers
        on int_orders.customer_id = dim_customers.customer_id
    where not dim_customers.has_customer_record

),

reviews_unknown_order as (

    select coalesce(sum(reviews_unknown_order), 0) as records
    from {{ ref('review_summary') }}

),

expected as (

    select
        'order_unknown_customer' as issue_type,
        records
    from orders_without_record
    union all
    select
        'review_unknown_order' as issue_type,
        records
    from reviews_unknown_order

)

select
    expected.issue_type,
    expected.records as expected_records,
    issues.records as counted_records
from expected
left join issues on expected.issue_type = issues.issue_type
where coalesce(issues.records, 0) != expected.records
