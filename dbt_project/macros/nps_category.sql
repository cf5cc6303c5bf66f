{% macro nps_category(score_expression) -%}
    case
        when {{ score_expression }} is null then null
        when {{ score_expression }} >= {{ var('promoter_min_score') }} then 'promoter'
        when {{ score_expression }} <= {{ var('detractor_max_score') }} then 'detractor'
        else 'passive'
    end
{%- endmacro %}
