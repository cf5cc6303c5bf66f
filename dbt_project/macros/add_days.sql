{% macro add_days(date_expression, days_expression) -%}
    {#- date + n days, as a date (dbt.dateadd returns a timestamp on several adapters). -#}
    cast({{ dbt.dateadd('day', days_expression, date_expression) }} as date)
{%- endmacro %}
