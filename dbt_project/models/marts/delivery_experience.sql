with

orders as (

    select * from {{ ref('int_orders') }}

),

-- the stored spells (customer_lifecycle_history is the view of them as of the as-of date):
-- reading them directly lets this model start before the history's data tests finish
spells as (

    select * from {{ ref('int_lifecycle_spells') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

delivered as (

    select
        cast({{ dbt.date_trunc('month', 'orders.delivered_date') }} as date) as delivery_month,
        orders.order_id,
        orders.customer_id,
        orders.delivered_date,
        orders.promised_delivery_date,
        orders.delivery_delay_days,
        orders.is_late,
        orders.review_rating
    from orders
    cross join as_of
    where orders.delivered_date is not null
        and orders.delivered_date <= as_of.as_of_date

),

monthly_orders as (

    select
        delivery_month,
        count(*) as delivered_orders,
        sum(case when promised_delivery_date is not null then 1 else 0 end) as promised_orders,
        sum(case when is_late then 1 else 0 end) as late_orders,
        percentile_cont(0.5) within group (
            order by cast(delivery_delay_days as {{ type_double() }})
        ) as delay_days_p50,
        percentile_cont(0.9) within group (
            order by cast(delivery_delay_days as {{ type_double() }})
        ) as delay_days_p90,
        max(delivery_delay_days) as delay_days_max,
        sum(case when is_late and review_rating is not null then 1 else 0 end)
            as reviewed_late_orders,
        avg(case when is_late then cast(review_rating as {{ type_double() }}) end)
            as mean_rating_late,
        sum(case when not is_late and review_rating is not null then 1 else 0 end)
            as reviewed_on_time_orders,
        avg(case when not is_late then cast(review_rating as {{ type_double() }}) end)
            as mean_rating_on_time
    from delivered
    group by delivery_month

),

-- per customer and delivery month: was any delivery late, and the last delivery day
customer_months as (

    select
        delivery_month,
        customer_id,
        max(case when is_late then 1 else 0 end) as had_late_delivery,
        max(delivered_date) as last_delivered_date
    from delivered
    group by delivery_month, customer_id

),

-- the latest entry of each customer into at_risk or lapsed (up to the as-of date): a customer
-- entered one after a month's last delivery exactly when this latest entry is after it (one
-- row per customer to join, instead of every spell of the customer per delivery month)
risk_entries as (

    select
        spells.customer_id,
        max(spells.valid_from) as last_risk_entry_date
    from spells
    cross join as_of
    where spells.stage in ('at_risk', 'lapsed')
        and spells.valid_from <= as_of.as_of_date
    group by spells.customer_id

),

-- did the customer enter at_risk or lapsed after that month's last delivery (up to as-of)?
customer_outcomes as (

    select
        customer_months.delivery_month,
        customer_months.customer_id,
        customer_months.had_late_delivery,
        case
            when risk_entries.last_risk_entry_date > customer_months.last_delivered_date then 1
            else 0
        end as later_at_risk
    from customer_months
    left join risk_entries on customer_months.customer_id = risk_entries.customer_id

),

monthly_customers as (

    select
        delivery_month,
        sum(had_late_delivery) as late_customers,
        sum(had_late_delivery * later_at_risk) as late_customers_later_at_risk,
        sum(1 - had_late_delivery) as on_time_customers,
        sum((1 - had_late_delivery) * later_at_risk) as on_time_customers_later_at_risk
    from customer_outcomes
    group by delivery_month

)

select
    monthly_orders.delivery_month,
    cast(monthly_orders.delivered_orders as bigint) as delivered_orders,
    cast(monthly_orders.promised_orders as bigint) as promised_orders,
    cast(monthly_orders.late_orders as bigint) as late_orders,
    cast(monthly_orders.late_orders as {{ type_double() }})
    / nullif(monthly_orders.promised_orders, 0) as late_share,
    cast(monthly_orders.delay_days_p50 as {{ type_double() }}) as delay_days_p50,
    cast(monthly_orders.delay_days_p90 as {{ type_double() }}) as delay_days_p90,
    cast(monthly_orders.delay_days_max as integer) as delay_days_max,
    cast(monthly_orders.reviewed_on_time_orders as bigint) as reviewed_on_time_orders,
    cast(monthly_orders.mean_rating_on_time as {{ type_double() }}) as mean_rating_on_time,
    cast(monthly_orders.reviewed_late_orders as bigint) as reviewed_late_orders,
    cast(monthly_orders.mean_rating_late as {{ type_double() }}) as mean_rating_late,
    cast(monthly_customers.on_time_customers as bigint) as on_time_customers,
    cast(monthly_customers.on_time_customers_later_at_risk as {{ type_double() }})
    / nullif(monthly_customers.on_time_customers, 0) as on_time_customers_later_at_risk_share,
    cast(monthly_customers.late_customers as bigint) as late_customers,
    cast(monthly_customers.late_customers_later_at_risk as {{ type_double() }})
    / nullif(monthly_customers.late_customers, 0) as late_customers_later_at_risk_share
from monthly_orders
inner join monthly_customers on monthly_orders.delivery_month = monthly_customers.delivery_month
