-- every spell but the last of a customer ends exactly where the next one starts (no gap, no
-- overlap), and only the last spell is open
with

spells as (

    select
        customer_id,
        valid_from,
        valid_to,
        is_current,
        lead(valid_from) over (partition by customer_id order by valid_from) as next_valid_from
    from {{ ref('customer_lifecycle_history') }}

)

select *
from spells
where
    (next_valid_from is null and (valid_to is not null or not is_current))
    or (next_valid_from is not null and (valid_to is null or valid_to != next_valid_from))
    or valid_to <= valid_from
