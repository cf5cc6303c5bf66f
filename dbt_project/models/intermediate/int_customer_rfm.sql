-- a table, not a view: rfm, dim_customers and its data tests read it (a view would recompute it
-- once per reader)
{{ config(materialized='table') }}

with

orders as (

    select * from {{ ref('int_orders') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

customer_orders as (

    select
        customer_id,
        max(order_date) as last_order_date,
        count(*) as frequency,
        sum(net_revenue) as monetary
    from orders
    where not is_cancelled
    group by customer_id

),

measured as (

    select
        customer_orders.customer_id,
        customer_orders.last_order_date,
        {{ dbt.datediff('customer_orders.last_order_date', 'as_of.as_of_date', 'day') }}
            as recency_days,
        customer_orders.frequency,
        customer_orders.monetary
    from customer_orders
    cross join as_of

),

-- quintile scores from percent ranks: ties share a score (deterministic), 5 is best
scored as (

    select
        *,
        cast(
            least(5, 1 + floor(5 * percent_rank() over (order by recency_days desc)))
            as {{ dbt.type_int() }}
        ) as recency_score,
        cast(
            least(5, 1 + floor(5 * percent_rank() over (order by frequency)))
            as {{ dbt.type_int() }}
        ) as frequency_score,
        cast(
            least(5, 1 + floor(5 * percent_rank() over (order by monetary)))
            as {{ dbt.type_int() }}
        ) as monetary_score
    from measured

)

select
    customer_id,
    last_order_date,
    recency_days,
    frequency,
    monetary,
    recency_score,
    frequency_score,
    monetary_score,
    recency_score * 100 + frequency_score * 10 + monetary_score as rfm_score,
    case
        when recency_score >= 4 and frequency_score >= 4 and monetary_score >= 4 then 'champions'
        when recency_score >= 3 and frequency_score >= 4 then 'loyal'
        when recency_score >= 4 and frequency_score >= 2 then 'potential_loyalists'
        when recency_score >= 4 then 'recent_customers'
        when recency_score = 3 then 'needs_attention'
        when frequency_score >= 4 and monetary_score >= 4 then 'cannot_lose_them'
        when frequency_score >= 3 then 'at_risk'
        else 'hibernating'
    end as rfm_segment
from scored
