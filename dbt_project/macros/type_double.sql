{% macro type_double() -%}
    {#- 64-bit float on every adapter (dbt.type_float() is a 32-bit FLOAT on DuckDB). -#}
    {{ adapter.dispatch('type_double', 'lifecycle')() }}
{%- endmacro %}

{% macro default__type_double() -%}
    double precision
{%- endmacro %}
