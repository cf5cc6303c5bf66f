-- every CDC version of every order (SQL shared with incremental models: macros/staging.sql)
{{ staged_order_events() }}
