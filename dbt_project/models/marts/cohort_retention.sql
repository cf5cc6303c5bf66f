with

orders as (

    select * from {{ ref('int_orders') }}

),

customer_cohorts as (

    select
        customer_id,
        cast({{ dbt.date_trunc('month', 'min(order_date)') }} as date) as cohort_month
    from orders
    where not is_cancelled
    group by customer_id

),

cohort_sizes as (

    select
        cohort_month,
        count(*) as customers
    from customer_cohorts
    group by cohort_month

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

-- month offsets 0..1199 (100 years of cohorts), generated without a compile-time query
month_offsets as (

    {{ dbt.generate_series(1200) }}

),

first_cohort as (

    select min(cohort_month) as cohort_month
    from customer_cohorts

),

-- every month from the first cohort to the as-of month
months as (

    select
        cast({{ dbt.dateadd(
            'month', 'month_offsets.generated_number - 1', 'first_cohort.cohort_month'
        ) }} as date) as date_month
    from month_offsets
    cross join first_cohort
    cross join as_of
    where month_offsets.generated_number - 1 <= {{ dbt.datediff(
        'first_cohort.cohort_month', 'as_of.as_of_date', 'month'
    ) }}

),

grid as (

    select
        cohort_sizes.cohort_month,
        cohort_sizes.customers,
        months.date_month as activity_month,
        {{ dbt.datediff('cohort_sizes.cohort_month', 'months.date_month', 'month') }}
            as months_since_first_order
    from cohort_sizes
    inner join months on cohort_sizes.cohort_month <= months.date_month

),

activity as (

    select
        customer_cohorts.cohort_month,
        cast({{ dbt.date_trunc('month', 'orders.order_date') }} as date) as activity_month,
        count(distinct orders.customer_id) as active_customers,
        sum(orders.net_revenue) as revenue
    from orders
    inner join customer_cohorts on orders.customer_id = customer_cohorts.customer_id
    where not orders.is_cancelled
    group by
        customer_cohorts.cohort_month,
        cast({{ dbt.date_trunc('month', 'orders.order_date') }} as date)

),

joined as (

    select
        grid.cohort_month,
        grid.months_since_first_order,
        grid.activity_month,
        grid.customers,
        coalesce(activity.active_customers, 0) as active_customers,
        coalesce(activity.revenue, 0) as revenue
    from grid
    left join activity
        on grid.cohort_month = activity.cohort_month
            and grid.activity_month = activity.activity_month

)

select
    cohort_month,
    cast(months_since_first_order as integer) as months_since_first_order,
    activity_month,
    cast(customers as bigint) as customers,
    cast(active_customers as bigint) as active_customers,
    cast(active_customers as {{ type_double() }}) / customers as retention_rate,
    cast(revenue as decimal(18, 2)) as revenue,
    cast(
        sum(revenue) over (
            partition by cohort_month
            order by months_since_first_order
            rows between unbounded preceding and current row
        ) / customers as {{ type_double() }}
    ) as cumulative_revenue_per_customer
from joined
