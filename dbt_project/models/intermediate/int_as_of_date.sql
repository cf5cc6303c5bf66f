-- the lifecycle "today": var('as_of_date') or the latest landed orders partition
select {{ lifecycle_as_of_date() }} as as_of_date
