with

issues as (

    select * from {{ ref('int_data_quality_events') }}

),

counted as (

    select
        issue_type,
        source_name,
        partition_date,
        count(*) as records,
        count(distinct customer_id) as customers
    from issues
    group by issue_type, source_name, partition_date

)

select
    partition_date,
    cast(issue_type as varchar) as issue_type,
    cast(source_name as varchar) as source_name,
    cast(records as bigint) as records,
    cast(customers as bigint) as customers,
    cast(
        case issue_type
            when 'duplicate_landing' then 'superseded: the latest landing of the key wins'
            when 'duplicate_order_version' then 'dropped: exact copy of a landed version'
            when 'stale_order_version' then 'kept as history: the latest updated_at wins'
            when 'order_unknown_customer' then 'kept: customer known from their orders'
            when 'review_unknown_order' then 'kept: counted as a review, linked to no order'
            when 'review_unknown_customer' then 'kept: counted as a review, in no customer row'
            when 'survey_unknown_customer'
                then 'kept: counted in nps_monthly as unknown, in no customer row'
            when 'checkout_unknown_customer' then 'kept: in no customer row'
            when 'checkout_unknown_order' then 'kept: counts as completed, not abandoned'
        end as varchar
    ) as handling
from counted
