{% macro generate_schema_name(custom_schema_name, node) -%}
    {#- Custom schemas are used verbatim (staging, intermediate, marts), not <target>_<custom>. -#}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
