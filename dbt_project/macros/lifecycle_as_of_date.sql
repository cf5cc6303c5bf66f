{% macro lifecycle_as_of_date() -%}
    {#-
        The lifecycle "today" as a SQL date expression.
        var('as_of_date') (YYYY-MM-DD) when set; otherwise the latest raw.orders _partition_date,
        falling back to the latest order date when _partition_date is empty.
    -#}
    {%- set as_of = var('as_of_date', none) -%}
    {%- if as_of is not none and as_of | string | trim != '' -%}
        cast('{{ as_of | string | trim }}' as date)
    {%- else -%}
        (
            select coalesce(max(_partition_date), max(cast(ordered_at as date)))
            from {{ source('raw', 'orders') }}
        )
    {%- endif -%}
{%- endmacro %}
