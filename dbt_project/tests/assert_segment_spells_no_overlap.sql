-- segment spells of a customer never overlap: one spell per start date, each ends after it
-- starts and no later than the next one starts, only the last one may be open, is_current
-- matches the open spell, and consecutive spells are in different segments
with

spells as (

    select
        customer_id,
        segment,
        valid_from,
        valid_to,
        is_current,
        count(*) over (partition by customer_id, valid_from) as same_start,
        lead(valid_from) over (partition by customer_id order by valid_from) as next_valid_from,
        lead(segment) over (partition by customer_id order by valid_from) as next_segment
    from {{ ref('segment_membership_history') }}

)

select *
from spells
where
    same_start > 1
    or valid_to <= valid_from
    or is_current != (valid_to is null)
    or (next_valid_from is not null and (valid_to is null or valid_to > next_valid_from))
    or (next_valid_from is not null and valid_to = next_valid_from and next_segment = segment)
