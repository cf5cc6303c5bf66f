-- customer_segments: every known customer (dim_customers) has exactly one segment per as-of
-- date, and the table holds a single as-of date
with

members as (

    select * from {{ ref('customer_segments') }}

),

customers as (

    select customer_id from {{ ref('dim_customers') }}

),

per_customer as (

    select
        customer_id,
        as_of_date,
        count(*) as rows_per_date,
        count(distinct segment) as segments
    from members
    group by customer_id, as_of_date

)

select
    customers.customer_id,
    per_customer.as_of_date,
    per_customer.rows_per_date,
    per_customer.segments
from customers
left join per_customer on customers.customer_id = per_customer.customer_id
where per_customer.customer_id is null
    or per_customer.rows_per_date != 1
    or per_customer.segments != 1
    or (select count(distinct members.as_of_date) from members) != 1
