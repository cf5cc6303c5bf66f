-- the latest landing of every customer (SQL shared with incremental models: macros/staging.sql)
{{ staged_customers() }}
