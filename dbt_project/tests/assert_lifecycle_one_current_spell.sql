-- every known customer has exactly one current spell, starting on or before the as-of date
with

customers as (

    select customer_id from {{ ref('int_customers') }}

),

current_spells as (

    select
        customer_id,
        count(*) as current_spells,
        max(valid_from) as valid_from,
        max(as_of_date) as as_of_date
    from {{ ref('customer_lifecycle_history') }}
    where is_current
    group by customer_id

)

select
    customers.customer_id,
    current_spells.current_spells
from customers
left join current_spells on customers.customer_id = current_spells.customer_id
where current_spells.current_spells is null
    or current_spells.current_spells != 1
    or current_spells.valid_from > current_spells.as_of_date
