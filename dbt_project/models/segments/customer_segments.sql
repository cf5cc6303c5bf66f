{%- set value_tiers = "('high', 'medium')" -%}

with

customers as (

    select * from {{ ref('dim_customers') }}

),

ml_scores as (

    select * from {{ ref('int_customer_ml_scores') }}

),

experience_events as (

    select * from {{ ref('int_customer_experience_events') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

experience_reasons as (

    select
        customer_id,
        {{ dbt.listagg('reason', "';'", 'order by event_date desc, reason') }} as reasons
    from experience_events
    group by customer_id

),

scored as (

    select
        customers.*,
        as_of.as_of_date,
        ml_scores.churn_probability,
        ml_scores.clv,
        case
            when ml_scores.clv is not null
                then percent_rank() over (
                        partition by ml_scores.clv is null order by ml_scores.clv
                    )
        end as clv_percentile,
        case
            when customers.lifecycle_stage != 'prospect'
                then percent_rank() over (
                        partition by customers.lifecycle_stage = 'prospect'
                        order by customers.trailing_12m_value
                    )
        end as trailing_value_percentile
    from customers
    cross join as_of
    left join ml_scores on customers.customer_id = ml_scores.customer_id

),

tiered as (

    select
        scored.*,
        case
            when scored.lifecycle_stage = 'prospect' then 'none'
            when greatest(coalesce(scored.clv_percentile, 0), scored.trailing_value_percentile)
                >= {{ var('value_tier_high_quantile') }} then 'high'
            when greatest(coalesce(scored.clv_percentile, 0), scored.trailing_value_percentile)
                >= {{ var('value_tier_medium_quantile') }} then 'medium'
            else 'low'
        end as value_tier
    from scored

),

rules as (

    select
        tiered.*,
        tiered.has_negative_experience
        and tiered.value_tier in {{ value_tiers }} as fires_service_recovery,
        tiered.is_hero
        or coalesce(tiered.clv_percentile >= {{ var('vip_clv_quantile') }}, false)
            as fires_vip_nurture,
        tiered.lifecycle_stage = 'new'
        and coalesce(tiered.clv_percentile >= {{ var('newcomer_clv_quantile') }}, false)
            as fires_high_potential_newcomer,
        tiered.lifecycle_stage = 'at_risk'
        and tiered.value_tier in {{ value_tiers }}
        and coalesce(
            tiered.churn_probability >= {{ var('win_back_churn_threshold') }}, false
        ) as fires_win_back,
        tiered.is_cart_abandoner as fires_cart_recovery,
        coalesce(
            tiered.latest_nps_category = 'promoter'
            and tiered.latest_nps_date
            > {{ add_days('tiered.as_of_date', '-' ~ var('advocacy_days')) }},
            false
        ) as fires_advocacy_ask,
        tiered.lifecycle_stage = 'lapsed' as fires_reactivation
    from tiered

),

segmented as (

    select
        rules.*,
        case
            when rules.lifecycle_stage = 'prospect' then 'prospect'
            when rules.fires_service_recovery then 'service_recovery'
            when rules.fires_vip_nurture then 'vip_nurture'
            when rules.fires_high_potential_newcomer then 'high_potential_newcomer'
            when rules.fires_win_back then 'win_back'
            when rules.fires_cart_recovery then 'cart_recovery'
            when rules.fires_advocacy_ask then 'advocacy_ask'
            when rules.fires_reactivation then 'reactivation'
            else 'nurture'
        end as segment
    from rules

),

explained as (

    select
        segmented.*,
        {{ concat_ws(';', [
            "case when segmented.lifecycle_stage = 'prospect' then 'no_orders' end",
            "case when segmented.has_negative_experience then experience_reasons.reasons end",
            "case when segmented.is_hero then 'hero_top_trailing_value' end",
            "case when segmented.clv_percentile >= "
                ~ ([var('newcomer_clv_quantile'), var('vip_clv_quantile')] | min) ~ " then "
                ~ dbt.concat(["'clv_pct='", "cast(cast(segmented.clv_percentile as decimal(4, 2)) as " ~ dbt.type_string() ~ ")"]) ~ " end",
            "case when segmented.lifecycle_stage in ('new', 'at_risk', 'lapsed', 'reactivated') then "
                ~ dbt.concat(["'stage_'", "segmented.lifecycle_stage"]) ~ " end",
            "case when segmented.churn_probability >= " ~ var('win_back_churn_threshold') ~ " then "
                ~ dbt.concat(["'churn_p='", "cast(cast(segmented.churn_probability as decimal(4, 2)) as " ~ dbt.type_string() ~ ")"]) ~ " end",
            "case when segmented.fires_cart_recovery then "
                ~ dbt.concat(["'cart_abandoned_'", "cast(segmented.last_abandoned_date as " ~ dbt.type_string() ~ ")"]) ~ " end",
            "case when segmented.fires_advocacy_ask then "
                ~ dbt.concat(["'promoter_score_'", "cast(segmented.latest_nps_score as " ~ dbt.type_string() ~ ")"]) ~ " end",
            "case when segmented.segment = 'nurture' then 'no_priority_rule' end",
        ]) }} as reasons
    from segmented
    left join experience_reasons on segmented.customer_id = experience_reasons.customer_id

)

select
    cast(customer_id as varchar) as customer_id,
    as_of_date,
    cast(lifecycle_stage as varchar) as lifecycle_stage,
    cast(segment as varchar) as segment,
    cast(
        case segment
            when 'prospect' then 'first_purchase_incentive'
            when 'service_recovery' then 'contact_and_compensate'
            when 'vip_nurture' then 'loyalty_and_referral_program'
            when 'high_potential_newcomer' then 'onboarding_incentive'
            when 'win_back' then 'win_back_offer'
            when 'cart_recovery' then 'cart_reminder'
            when 'advocacy_ask' then 'ask_review_or_referral'
            when 'reactivation' then 'reactivation_campaign'
            else 'nurture_newsletter'
        end as varchar
    ) as recommended_action,
    cast(reasons as varchar) as reasons,
    cast(churn_probability as {{ type_double() }}) as churn_probability,
    cast(clv as {{ type_double() }}) as clv,
    cast(value_tier as varchar) as value_tier,
    cast(latest_nps_category as varchar) as nps_category,
    is_hero,
    has_negative_experience,
    is_cart_abandoner
from explained
