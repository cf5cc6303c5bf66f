-- every customer in customer_segments has exactly one current spell, in the segment they are in
-- on the as-of date (checked when the history is not ahead of customer_segments: a night older
-- than the newest stored spell leaves the history untouched)
with

members as (

    select * from {{ ref('customer_segments') }}

),

spells as (

    select * from {{ ref('segment_membership_history') }}

),

current_spells as (

    select
        customer_id,
        count(*) as current_spells,
        max(segment) as segment,
        max(valid_from) as valid_from
    from spells
    where is_current
    group by customer_id

)

select
    members.customer_id,
    members.segment,
    current_spells.segment as spell_segment,
    current_spells.current_spells
from members
left join current_spells on members.customer_id = current_spells.customer_id
where members.as_of_date >= (select max(spells.valid_from) from spells)
    and (
        current_spells.current_spells is null
        or current_spells.current_spells != 1
        or current_spells.segment != members.segment
        or current_spells.valid_from > members.as_of_date
    )
