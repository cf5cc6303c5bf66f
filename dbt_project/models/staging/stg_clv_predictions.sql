with

source as (

    select * from {{ source('ml', 'clv_predictions') }}

)

select
    cast(customer_id as {{ dbt.type_string() }}) as customer_id,
    cast(as_of_date as date) as scored_as_of_date,
    cast(p_alive as {{ type_double() }}) as p_alive,
    cast(expected_orders_12m as {{ type_double() }}) as expected_orders_12m,
    cast(expected_spend_12m as {{ type_double() }}) as expected_spend_12m,
    cast(clv as {{ type_double() }}) as clv,
    cast(clv_lower as {{ type_double() }}) as clv_lower,
    cast(clv_upper as {{ type_double() }}) as clv_upper,
    cast(model_version as {{ dbt.type_string() }}) as model_version,
    cast(scored_at as {{ dbt.type_timestamp() }}) as scored_at
from source
