-- consecutive spells of a customer have different stages (same-stage points are collapsed)
select
    customer_id,
    valid_from,
    stage,
    previous_stage
from {{ ref('customer_lifecycle_history') }}
where stage = previous_stage
