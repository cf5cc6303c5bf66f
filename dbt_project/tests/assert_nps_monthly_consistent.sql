-- NPS lies in [-100, 100], the categories add up to the responses, and in every month each
-- dimension's rows add up to the 'all' row (answers are partitioned, none lost)
with

nps as (

    select * from {{ ref('nps_monthly') }}

),

totals as (

    select
        response_month,
        dimension,
        sum(responses) as responses,
        sum(promoters) as promoters,
        sum(detractors) as detractors
    from nps
    group by response_month, dimension

),

all_rows as (

    select
        response_month,
        responses,
        promoters,
        detractors
    from totals
    where dimension = 'all'

)

select
    response_month,
    dimension,
    dimension_value,
    'row_inconsistent' as failure
from nps
where nps < -100
    or nps > 100
    or responses <= 0
    or promoters + passives + detractors != responses

union all

select
    totals.response_month,
    totals.dimension,
    null as dimension_value,
    'dimension_does_not_add_up' as failure
from totals
left join all_rows on totals.response_month = all_rows.response_month
where all_rows.response_month is null
    or totals.responses != all_rows.responses
    or totals.promoters != all_rows.promoters
    or totals.detractors != all_rows.detractors

union all

-- grain: one row per month x dimension x dimension value
select
    response_month,
    dimension,
    dimension_value,
    'duplicate_row' as failure
from nps
group by response_month, dimension, dimension_value
having count(*) > 1
