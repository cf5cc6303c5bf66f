with

source as (

    select * from {{ source('ml', 'model_runs') }}

)

select
    cast(run_id as {{ dbt.type_string() }}) as run_id,
    cast(model_kind as {{ dbt.type_string() }}) as model_kind,
    cast(model_version as {{ dbt.type_string() }}) as model_version,
    cast(trained_at as {{ dbt.type_timestamp() }}) as trained_at,
    cast(as_of_date as date) as trained_as_of_date,
    cast(metrics_json as {{ dbt.type_string() }}) as metrics_json,
    cast(is_champion as {{ dbt.type_boolean() }}) as is_champion
from source
