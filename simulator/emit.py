"""Turn buffered numeric records into DataFrames in the landing-contract columns.

Timestamps become ISO-8601 UTC strings (``2025-03-04T10:22:31Z``), dates ``YYYY-MM-DD``,
money floats rounded to 2 decimals, ids zero-padded strings (``C0000123``, ``O000000042``).
Missing optional values are ``None``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from orchestration.contract import ORDER_STATUSES, SOURCES
from simulator.config import ACQUISITION_CHANNELS, COUNTRIES

if TYPE_CHECKING:
    from simulator.engine import Simulation

STATUS_NAMES = np.array(ORDER_STATUSES, dtype=object)  # same order as orders.STATUS_* codes
CHANNELS = np.array(ACQUISITION_CHANNELS, dtype=object)
COUNTRY_CODES = np.array(COUNTRIES, dtype=object)


def timestamps(sec: np.ndarray) -> np.ndarray:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SSZ`` strings; negative seconds -> ``None``."""
    sec = np.asarray(sec, dtype=np.int64)
    text = np.char.add(np.datetime_as_string(sec.astype("datetime64[s]"), unit="s"), "Z")
    out = text.astype(object)
    out[sec < 0] = None
    return out


def ids(prefix: str, numbers: np.ndarray, width: int) -> list[str]:
    """Zero-padded identifiers such as ``C0000123``."""
    return [f"{prefix}{n:0{width}d}" for n in numbers.tolist()]


def customer_ids(sim: Simulation, idx: np.ndarray) -> list[str]:
    """Customer id of population index ``idx`` (``C`` + 1-based, at least 7 digits)."""
    width = max(7, len(str(sim.pop.size)))
    return ids("C", np.asarray(idx) + 1, width)


def _frame(source: str, data: dict[str, object], sort_keys: tuple[np.ndarray, ...]) -> pd.DataFrame:
    """DataFrame in contract column order, rows sorted by ``sort_keys`` (last key is primary)."""
    n = len(data[SOURCES[source].column_names[0]])  # type: ignore[arg-type]
    order = np.lexsort(sort_keys) if n > 1 else np.arange(n)
    cols = {}
    for name in SOURCES[source].column_names:
        value = data[name]
        if isinstance(value, str):
            cols[name] = np.full(n, value, dtype=object)
        else:
            arr = np.asarray(value, dtype=object) if isinstance(value, list) else value
            cols[name] = arr[order]  # type: ignore[index]
    return pd.DataFrame(cols, copy=False)


def _concat(parts: list[dict[str, np.ndarray]], keys: list[str]) -> dict[str, np.ndarray]:
    if not parts:
        return {k: np.array([], dtype=np.int64) for k in keys}
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def customers_frame(sim: Simulation, lo: int, hi: int) -> pd.DataFrame:
    """Customers who signed up in the index range ``[lo, hi)``."""
    idx = np.arange(lo, hi)
    sec = sim.start_sec + np.floor(sim.pop.signup_t[lo:hi] * 86_400).astype(np.int64)
    cids = customer_ids(sim, idx)
    data = {
        "customer_id": cids,
        "signed_up_at": timestamps(sec),
        "email": [f"{cid.lower()}@example.com" for cid in cids],
        "country": COUNTRY_CODES[sim.pop.country[lo:hi]],
        "acquisition_channel": CHANNELS[sim.pop.channel[lo:hi]],
    }
    return _frame("customers", data, (idx,))


def orders_frame(sim: Simulation, parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """Order versions (CDC rows) due today."""
    keys = [
        "order_id", "cust", "ordered_sec", "order_total", "discount_total", "shipping_total",
        "item_count", "is_app", "promised_day", "status", "delivered_sec", "updated_sec",
    ]  # fmt: skip
    r = _concat(parts, keys)
    data = {
        "order_id": ids("O", r["order_id"], 9),
        "customer_id": customer_ids(sim, r["cust"]),
        "ordered_at": timestamps(r["ordered_sec"]),
        "status": STATUS_NAMES[r["status"].astype(np.int64)],
        "order_total": r["order_total"].astype(float),
        "currency": sim.config.currency,
        "discount_total": r["discount_total"].astype(float),
        "shipping_total": r["shipping_total"].astype(float),
        "item_count": r["item_count"].astype(np.int64),
        "channel": np.where(r["is_app"].astype(bool), "app", "web").astype(object),
        "promised_delivery_date": sim.dates[r["promised_day"].astype(np.int64)],
        "delivered_at": timestamps(r["delivered_sec"]),
        "updated_at": timestamps(r["updated_sec"]),
    }
    return _frame("orders", data, (r["order_id"], r["updated_sec"]))


def reviews_frame(sim: Simulation, parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """Reviews written today."""
    keys = ["review_id", "cust", "order_id", "rating", "title", "body", "created_sec"]
    r = _concat(parts, keys)
    data = {
        "review_id": ids("R", r["review_id"], 9),
        "customer_id": customer_ids(sim, r["cust"]),
        "order_id": ids("O", r["order_id"], 9),
        "rating": r["rating"].astype(np.int64),
        "title": r["title"].astype(object),
        "body": r["body"].astype(object),
        "created_at": timestamps(r["created_sec"]),
    }
    return _frame("reviews", data, (r["review_id"], r["created_sec"]))


def surveys_frame(sim: Simulation, parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """Post-purchase NPS answers given today."""
    keys = ["response_id", "cust", "score", "comment", "responded_sec"]
    r = _concat(parts, keys)
    data = {
        "response_id": ids("S", r["response_id"], 9),
        "customer_id": customer_ids(sim, r["cust"]),
        "survey": "nps_post_purchase",
        "score": r["score"].astype(np.int64),
        "comment": r["comment"].astype(object),
        "responded_at": timestamps(r["responded_sec"]),
    }
    return _frame("surveys", data, (r["response_id"], r["responded_sec"]))


def checkouts_frame(sim: Simulation, parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """Checkouts started today: completed ones (with their order) and abandoned ones."""
    r = _concat(parts, ["cust", "order_id", "sec", "cart_value"])
    n = r["cust"].shape[0]
    checkout_no = sim._next_ids("checkout", n)
    order_ids = np.array(ids("O", r["order_id"], 9), dtype=object)
    order_ids[r["order_id"] == 0] = None
    data = {
        "checkout_id": ids("K", checkout_no, 9),
        "customer_id": customer_ids(sim, r["cust"]),
        "started_at": timestamps(r["sec"]),
        "cart_value": r["cart_value"].astype(float),
        "completed_order_id": order_ids,
    }
    return _frame("checkouts", data, (checkout_no, r["sec"]))
