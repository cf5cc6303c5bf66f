-- a table, not a view: customer_segments and its data tests read it (a view would recompute
-- it once per reader)
{{ config(materialized='table') }}

with

churn_scores as (

    select * from {{ ref('stg_churn_scores') }}

),

clv_predictions as (

    select * from {{ ref('stg_clv_predictions') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

-- the latest scoring date on or before the as-of date (never a score from the future)
churn_run as (

    select max(churn_scores.scored_as_of_date) as scored_as_of_date
    from churn_scores
    cross join as_of
    where churn_scores.scored_as_of_date <= as_of.as_of_date

),

clv_run as (

    select max(clv_predictions.scored_as_of_date) as scored_as_of_date
    from clv_predictions
    cross join as_of
    where clv_predictions.scored_as_of_date <= as_of.as_of_date

),

latest_churn as (

    select
        churn_scores.*,
        row_number() over (
            partition by churn_scores.customer_id
            order by churn_scores.scored_at desc, churn_scores.model_version desc
        ) as score_rank
    from churn_scores
    inner join churn_run on churn_scores.scored_as_of_date = churn_run.scored_as_of_date

),

latest_clv as (

    select
        clv_predictions.*,
        row_number() over (
            partition by clv_predictions.customer_id
            order by clv_predictions.scored_at desc, clv_predictions.model_version desc
        ) as score_rank
    from clv_predictions
    inner join clv_run on clv_predictions.scored_as_of_date = clv_run.scored_as_of_date

),

customer_ids as (

    select customer_id from latest_churn
    union
    select customer_id from latest_clv

)

select
    customer_ids.customer_id,
    latest_churn.churn_probability,
    latest_churn.model_version as churn_model_version,
    latest_churn.scored_as_of_date as churn_scored_as_of_date,
    latest_clv.p_alive,
    latest_clv.expected_orders_12m,
    latest_clv.expected_spend_12m,
    latest_clv.clv,
    latest_clv.model_version as clv_model_version,
    latest_clv.scored_as_of_date as clv_scored_as_of_date
from customer_ids
left join latest_churn
    on customer_ids.customer_id = latest_churn.customer_id and latest_churn.score_rank = 1
left join latest_clv
    on customer_ids.customer_id = latest_clv.customer_id and latest_clv.score_rank = 1
