{% macro concat_ws(separator, expressions) -%}
    {{ adapter.dispatch('concat_ws', 'lifecycle')(separator, expressions) }}
{%- endmacro %}

{% macro default__concat_ws(separator, expressions) -%}
    {#- Joins the non-null expressions with separator (null when all are null). -#}
    nullif(concat_ws('{{ separator }}', {{ expressions | join(', ') }}), '')
{%- endmacro %}
