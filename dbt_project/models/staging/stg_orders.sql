-- the latest version of every order (SQL shared with incremental models: macros/staging.sql)
{{ staged_orders(ref('stg_order_events')) }}
