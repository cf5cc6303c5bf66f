-- A table, not a view: the date the warehouse was last built for. Checks and readers compare
-- the marts with staging "up to the as-of date"; a view would move on as soon as another run
-- loads a newer day, before the marts are rebuilt.
{{ config(materialized='table') }}

-- the lifecycle "today": var('as_of_date') or the latest landed orders partition
select {{ lifecycle_as_of_date() }} as as_of_date
