"""Read the model inputs from the warehouse's staging layer (glue; no dagster import).

``ml/`` never touches the database: this module turns staging views into the pandas
frames of :class:`ml.data.LifecycleData`, cut at the as-of date.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from ml.data import LifecycleData

# staging view -> (columns, timestamp column bounding it at the as-of date)
INPUTS: dict[str, tuple[str, list[str], str]] = {
    "orders": (
        "stg_order_events",
        [
            "order_id",
            "customer_id",
            "ordered_at",
            "status",
            "order_total",
            "discount_total",
            "shipping_total",
            "item_count",
            "channel",
            "promised_delivery_date",
            "delivered_at",
            "updated_at",
        ],
        "updated_at",
    ),
    "reviews": (
        "stg_reviews",
        ["review_id", "customer_id", "order_id", "rating", "created_at"],
        "created_at",
    ),
    "surveys": (
        "stg_surveys",
        ["response_id", "customer_id", "survey", "score", "responded_at"],
        "responded_at",
    ),
    "checkouts": (
        "stg_checkouts",
        ["checkout_id", "customer_id", "started_at", "cart_value", "completed_order_id"],
        "started_at",
    ),
    "customers": (
        "stg_customers",
        ["customer_id", "signed_up_at", "country", "acquisition_channel"],
        "signed_up_at",
    ),
}


def load_lifecycle_data(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> LifecycleData:
    """Everything known by the end of ``as_of`` (timestamps before the next midnight)."""
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    frames = {}
    for name, (view, cols, ts) in INPUTS.items():
        col_sql = ", ".join(f'"{c}"' for c in cols)
        frame = con.execute(
            f'select {col_sql} from staging."{view}" where "{ts}" < $end', {"end": end}
        ).df()
        for c in ("order_total", "discount_total", "shipping_total", "cart_value"):
            if c in frame:
                frame[c] = frame[c].astype("float64")
        frames[name] = frame
    return LifecycleData(**frames)


def as_of_cutoff(as_of: dt.date) -> pd.Timestamp:
    """The instant the as-of day ends: features see everything before it."""
    return pd.Timestamp(as_of) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
