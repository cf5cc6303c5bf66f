with

rfm as (

    select * from {{ ref('int_customer_rfm') }}

)

select
    cast(customer_id as varchar) as customer_id,
    last_order_date,
    cast(recency_days as integer) as recency_days,
    cast(frequency as integer) as frequency,
    cast(monetary as decimal(18, 2)) as monetary,
    cast(recency_score as integer) as recency_score,
    cast(frequency_score as integer) as frequency_score,
    cast(monetary_score as integer) as monetary_score,
    cast(rfm_score as integer) as rfm_score,
    cast(rfm_segment as varchar) as rfm_segment
from rfm
