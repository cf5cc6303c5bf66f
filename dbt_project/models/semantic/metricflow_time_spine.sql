-- MetricFlow time spine: one row per day from 2000-01-01 to 2049-12-31. The range is fixed
-- (the calendar does not depend on the data, so it is the same on every run and engine) and
-- generated with dbt.generate_series, which needs no query at compile time (dbt.date_spine
-- does).
with

day_offsets as (

    {{ dbt.generate_series(18263) }}

)

select {{ add_days("cast('2000-01-01' as date)", 'generated_number - 1') }} as date_day
from day_offsets
