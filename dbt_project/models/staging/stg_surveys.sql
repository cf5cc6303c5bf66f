-- the latest landing of every NPS answer (SQL shared with incremental models: macros/staging.sql)
{{ staged_surveys() }}
