"""Read the model inputs from the warehouse's staging layer (glue; no dagster import).

``ml/`` never touches the database: this module turns staging views into the pandas
frames of :class:`ml.data.LifecycleData`, cut at the as-of date. The columns read and the
timestamp that bounds each table come from ``ml.data`` (``SCHEMAS``, ``KNOWN_AT``).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from ml.data import KNOWN_AT, SCHEMAS, LifecycleData

# LifecycleData table -> the staging view it is read from
VIEWS = {
    "orders": "stg_order_events",
    "reviews": "stg_reviews",
    "surveys": "stg_surveys",
    "checkouts": "stg_checkouts",
    "customers": "stg_customers",
}


# ml.data column kind -> the SQL type it is read as (decimals and dates would arrive as
# one Python object per value: at 7 M order versions that took ~30 s and 3 GB more)
SQL_TYPES = {"id": "varchar", "str": "varchar", "float": "double", "datetime": "timestamp"}


def load_lifecycle_data(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> LifecycleData:
    """Everything known by the end of ``as_of`` (timestamps before the next midnight).

    Read through Arrow with text as categoricals: :class:`LifecycleData` then keeps one
    string object per distinct value instead of one per row, without hashing 7 M strings."""
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    frames = {}
    for name, view in VIEWS.items():
        col_sql = ", ".join(
            f'cast("{c}" as {SQL_TYPES[kind]}) as "{c}"' for c, kind in SCHEMAS[name].items()
        )
        table = con.execute(
            f'select {col_sql} from staging."{view}" where "{KNOWN_AT[name]}" < $end',
            {"end": end},
        ).to_arrow_table()
        frames[name] = table.to_pandas(
            strings_to_categorical=True, coerce_temporal_nanoseconds=True, self_destruct=True
        )
        del table
    return LifecycleData(**frames)


def as_of_cutoff(as_of: dt.date) -> pd.Timestamp:
    """The instant the as-of day ends: features see everything before it."""
    return pd.Timestamp(as_of) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
