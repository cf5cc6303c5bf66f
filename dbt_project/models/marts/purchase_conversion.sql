with

purchase_days as (

    select * from {{ ref('int_customer_purchase_days') }}

),

-- one row per customer with their 2nd and 3rd purchase days (same-day orders are one
-- purchase; cancelled orders are none)
customer_purchases as (

    select
        customer_id,
        cast({{ dbt.date_trunc('month', 'min(first_purchase_date)') }} as date) as cohort_month,
        max(case when purchase_number = 2 then gap_days end) as days_to_second_purchase,
        max(case when purchase_number >= 2 then 1 else 0 end) as made_second_purchase,
        max(case when purchase_number >= 3 then 1 else 0 end) as made_third_purchase
    from purchase_days
    group by customer_id

),

cohorts as (

    select
        cohort_month,
        count(*) as customers,
        sum(made_second_purchase) as second_purchase_customers,
        sum(made_third_purchase) as third_purchase_customers,
        percentile_cont(0.5) within group (
            order by cast(days_to_second_purchase as {{ type_double() }})
        ) as median_days_to_second_purchase
    from customer_purchases
    group by cohort_month

)

select
    cohort_month,
    cast(customers as bigint) as customers,
    cast(second_purchase_customers as bigint) as second_purchase_customers,
    cast(second_purchase_customers as {{ type_double() }}) / customers as second_purchase_rate,
    cast(third_purchase_customers as bigint) as third_purchase_customers,
    cast(third_purchase_customers as {{ type_double() }})
    / nullif(second_purchase_customers, 0) as third_after_second_rate,
    cast(median_days_to_second_purchase as {{ type_double() }}) as median_days_to_second_purchase
from cohorts
