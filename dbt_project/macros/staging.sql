{#-
    The SQL of the staging models that incremental models also need for a subset of keys.
    stg_*.sql call these macros without a filter (the views over the whole history);
    incremental models call them with a filter on the raw rows (e.g. the orders of the
    customers that changed), so the deduplication / latest-version windows run over those keys
    only: a semi-join on a view is not pushed below its window functions by DuckDB or
    PostgreSQL, a filter on the raw rows is. Every filter keeps all raw rows of a key (the
    windows partition by that key), so a filtered result is exactly the view's rows for it.
-#}

{% macro staged_order_events(raw_filter=none) -%}
    {#- stg_order_events: every CDC version, typed; exact duplicates kept once. raw_filter: a
        predicate on raw.orders columns that keeps every version of the orders it keeps. -#}
    with

    source as (

        select * from {{ source('raw', 'orders') }}
        {%- if raw_filter %}
            where {{ raw_filter }}
        {%- endif %}

    ),

    typed as (

        select
            cast(order_id as {{ dbt.type_string() }}) as order_id,
            cast(customer_id as {{ dbt.type_string() }}) as customer_id,
            cast(ordered_at as {{ dbt.type_timestamp() }}) as ordered_at,
            lower(status) as status,
            order_total,
            upper(currency) as currency,
            discount_total,
            shipping_total,
            item_count,
            lower(channel) as channel,
            promised_delivery_date,
            cast(delivered_at as {{ dbt.type_timestamp() }}) as delivered_at,
            cast(coalesce(updated_at, ordered_at) as {{ dbt.type_timestamp() }}) as updated_at,
            _partition_date,
            _row_number
        from source

    ),

    -- exact duplicates (the same version re-landed, possibly on another day) are kept once:
    -- the first landing wins.
    deduplicated as (

        select
            *,
            row_number() over (
                partition by
                    order_id, customer_id, ordered_at, status, order_total, currency,
                    discount_total, shipping_total, item_count, channel,
                    promised_delivery_date, delivered_at, updated_at
                order by _partition_date, _row_number
            ) as duplicate_rank
        from typed

    )

    select
        {{ dbt.hash(dbt.concat([
            "order_id", "'|'", "cast(_partition_date as " ~ dbt.type_string() ~ ")",
            "'|'", "cast(_row_number as " ~ dbt.type_string() ~ ")"
        ])) }} as order_event_id,
        order_id,
        customer_id,
        ordered_at,
        status,
        order_total,
        currency,
        discount_total,
        shipping_total,
        item_count,
        channel,
        promised_delivery_date,
        delivered_at,
        updated_at,
        _partition_date as partition_date,
        _row_number as source_row_number
    from deduplicated
    where duplicate_rank = 1
{%- endmacro %}


{% macro staged_orders(order_events) -%}
    {#- stg_orders: the latest version of every order in order_events (a relation, or a
        parenthesised query with an alias). -#}
    with

    order_events as (

        select * from {{ order_events }}

    ),

    ranked as (

        select
            *,
            count(*) over (partition by order_id) as version_count,
            row_number() over (
                partition by order_id
                order by updated_at desc, partition_date desc, source_row_number desc
            ) as version_rank
        from order_events

    )

    select
        order_id,
        customer_id,
        ordered_at,
        cast(ordered_at as date) as order_date,
        status,
        order_total,
        currency,
        discount_total,
        shipping_total,
        item_count,
        channel,
        promised_delivery_date,
        delivered_at,
        updated_at,
        partition_date,
        version_count
    from ranked
    where version_rank = 1
{%- endmacro %}


{% macro staged_customers(raw_filter=none) -%}
    {#- stg_customers: the latest landing of every customer (email hashed). -#}
    with

    ranked as (

        {{ latest_landing('customers', 'customer_id', raw_filter) }}

    )

    select
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(signed_up_at as {{ dbt.type_timestamp() }}) as signed_up_at,
        cast(signed_up_at as date) as signed_up_date,
        case
            when email is not null then {{ dbt.hash('lower(trim(email))') }}
        end as email_hash,
        upper(trim(country)) as country,
        lower(trim(acquisition_channel)) as acquisition_channel,
        _partition_date as source_partition_date
    from ranked
{%- endmacro %}


{% macro staged_reviews(raw_filter=none) -%}
    {#- stg_reviews: the latest landing of every review (no title / body text). -#}
    with

    ranked as (

        {{ latest_landing('reviews', 'review_id', raw_filter) }}

    )

    select
        cast(review_id as {{ dbt.type_string() }}) as review_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        rating,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(created_at as date) as created_date,
        coalesce({{ dbt.length('trim(body)') }}, 0) > 0 as has_body,
        coalesce({{ dbt.length('body') }}, 0) as body_length
    from ranked
{%- endmacro %}


{% macro staged_surveys(raw_filter=none) -%}
    {#- stg_surveys: the latest landing of every NPS answer (no comment text). -#}
    with

    ranked as (

        {{ latest_landing('surveys', 'response_id', raw_filter) }}

    )

    select
        cast(response_id as {{ dbt.type_string() }}) as response_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        lower(survey) as survey,
        score,
        {{ nps_category('score') }} as nps_category,
        cast(responded_at as {{ dbt.type_timestamp() }}) as responded_at,
        cast(responded_at as date) as responded_date
    from ranked
{%- endmacro %}


{% macro latest_landing(table_name, key, raw_filter=none) -%}
    {#-
        The latest landing of every ``key`` of raw.<table_name> (newest partition, then the
        last row of its file): a record landed again on a later day replaces the earlier one.
        ``raw_filter`` restricts the raw rows first (see the top of this file).
    -#}
    select *
    from (
        select
            *,
            row_number() over (
                partition by {{ key }}
                order by _partition_date desc, _row_number desc
            ) as version_rank
        from {{ source('raw', table_name) }}
        {%- if raw_filter %}
            where {{ raw_filter }}
        {%- endif %}
    ) as landed
    where version_rank = 1
{%- endmacro %}
