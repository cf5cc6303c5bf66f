with

source as (

    select * from {{ source('ml', 'churn_scores') }}

)

select
    cast(customer_id as {{ dbt.type_string() }}) as customer_id,
    cast(as_of_date as date) as scored_as_of_date,
    cast(churn_probability as {{ type_double() }}) as churn_probability,
    cast(model_version as {{ dbt.type_string() }}) as model_version,
    cast(scored_at as {{ dbt.type_timestamp() }}) as scored_at
from source
