{% macro divide_to_cents(numerator, denominator) -%}
    {#-
        numerator / denominator as decimal(18, 2), rounded half away from zero from the exact
        quotient on every adapter (null when denominator is null; wrap it in nullif(.., 0)).
    -#}
    {{ adapter.dispatch('divide_to_cents', 'lifecycle')(numerator, denominator) }}
{%- endmacro %}

{% macro default__divide_to_cents(numerator, denominator) -%}
    {#- numeric / integer is exact decimal arithmetic (PostgreSQL, Snowflake, BigQuery). -#}
    cast(({{ numerator }}) / ({{ denominator }}) as decimal(18, 2))
{%- endmacro %}

{% macro duckdb__divide_to_cents(numerator, denominator) -%}
    {#-
        DuckDB divides DECIMALs in DOUBLE (160.42 / 4 -> 40.1049999.. -> 40.10, not 40.11):
        truncate the quotient exactly to 1e-5 with integer division, then round the decimal.
    -#}
    cast(round(
        cast(cast(({{ numerator }}) * 100000 as hugeint) // ({{ denominator }}) as decimal(38, 0))
        * 0.00001,
        2
    ) as decimal(18, 2))
{%- endmacro %}
