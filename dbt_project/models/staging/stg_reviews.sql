-- the latest landing of every review (SQL shared with incremental models: macros/staging.sql)
{{ staged_reviews() }}
