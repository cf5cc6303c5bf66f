"""Expected value per order for the CLV challenger (:mod:`ml.clv_challenger`): a
Gamma-Gamma empirical-Bayes mean that also weighs abandoned carts, on values adjusted for a
monthly seasonal index.

Written here because Gamma-Gamma implementations (lifetimes, pymc-marketing) take the mean
order value of repeat buyers only and no second kind of evidence such as abandoned carts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.btyd import GammaGammaFitter
from ml.data import COMPLETED_ORDER_KEY, LifecycleData, to_timestamp
from ml.features import DAY, KEY, abandoned_checkouts
from ml.grouping import key_groupby

MIN_ROWS = 50
VALUE_COLUMNS = ("n_orders", "value_sum", "n_carts", "cart_value_sum")
_VALUE_PARAMS = ("p", "q", "gamma", "cart_shape", "cart_ratio")


def value_season(data: LifecycleData, as_of: object) -> pd.Series:
    """Seasonal index of order values by calendar month (1-12): the month's mean
    ``order_total`` over the mean of the monthly means, from the orders known at ``as_of``.
    All 1 unless every month has ``MIN_ROWS`` orders."""
    snap = data.snapshot(as_of)
    month = snap["ordered_at"].dt.month
    stats = snap["order_total"].groupby(month).agg(["mean", "size"]).reindex(range(1, 13))
    if stats["size"].fillna(0).min() < MIN_ROWS or not (stats["mean"] > 0).all():
        return pd.Series(1.0, index=range(1, 13), name="season")
    return (stats["mean"] / stats["mean"].mean()).rename("season")


def horizon_season(season: pd.Series, cutoff: object, horizon_days: int) -> float:
    """Mean seasonal index over the days of ``(cutoff, cutoff + horizon]``."""
    start = to_timestamp(cutoff).normalize() + DAY
    days = pd.date_range(start, periods=max(int(horizon_days), 1), freq="D")
    return float(season.reindex(days.month).fillna(1.0).mean())


def value_history(
    data: LifecycleData, cutoff: object, season: pd.Series | None = None
) -> pd.DataFrame:
    """Order and abandoned-cart values known at ``cutoff``, by customer_id (every customer with
    an order): ``n_orders`` and ``value_sum`` of all orders (any status, ``order_total``),
    ``n_carts`` and ``cart_value_sum`` of the checkouts not completed by a known order. Values
    are divided by ``season`` (:func:`value_season`) of their month when given."""
    cutoff = to_timestamp(cutoff)
    snap = data.snapshot(cutoff)
    c = data.checkouts
    c = c.loc[c["started_at"] <= cutoff, [KEY, "started_at", "cart_value", COMPLETED_ORDER_KEY]]
    c = c[abandoned_checkouts(c, snap)]
    value, cart = snap["order_total"], c["cart_value"]
    if season is not None:
        value = value / snap["ordered_at"].dt.month.map(season).to_numpy()
        cart = cart / c["started_at"].dt.month.map(season).to_numpy()
    g, keys = key_groupby(value, snap[KEY])  # integer customer keys: see LifecycleData
    out = pd.DataFrame({"n_orders": g.size().astype(float), "value_sum": g.sum(min_count=0)})
    out = out.set_axis(keys)
    g, cart_keys = key_groupby(cart, c[KEY])
    carts = pd.DataFrame({"n_carts": g.size().astype(float), "cart_value_sum": g.sum()})
    out = out.join(carts.set_axis(cart_keys).reindex(keys, fill_value=0.0))
    return out.fillna(0.0).set_axis(data.customer_ids[out.index])


def _gamma_gamma(n: pd.Series, total: pd.Series) -> np.ndarray | None:
    """Gamma-Gamma (p, q, gamma) on the customers' mean values; None if it fails or q <= 1."""
    keep = (n > 0) & (total > 0)
    if keep.sum() < MIN_ROWS:
        return None
    try:
        fitted = GammaGammaFitter().fit(n[keep], total[keep] / n[keep])
    except (ValueError, RuntimeError, ArithmeticError, np.linalg.LinAlgError):
        return None
    params = np.array([fitted.params_[k] for k in ("p", "q", "gamma")], float)
    return params if np.isfinite(params).all() and params[1] > 1.0 else None


class OrderValueModel:
    """Empirical-Bayes mean order value: Gamma-Gamma with abandoned carts as extra evidence.

    Order values are Gamma(p, nu) with nu ~ Gamma(q, gamma) across customers (fitted on every
    order's ``order_total``); abandoned carts are Gamma(p_c, .) around ``r`` times the same
    mean (``p_c`` and ``r`` from a Gamma-Gamma fit on the carts). The posterior mean value per
    order is ``p (gamma + S + w C) / (q + p n + p_c k - 1)`` with ``w = p_c / (p r)``: ``n``
    orders worth ``S``, ``k`` carts worth ``C``. Without a usable cart fit the carts are
    ignored; without a usable order fit the observed mean ``S / n`` is used.

    Attributes
    ----------
    params_ : dict
        ``p``, ``q``, ``gamma`` (NaN: no order fit), ``cart_shape`` and ``cart_ratio``
        (0 and NaN: carts ignored).
    """

    def fit(self, history: pd.DataFrame) -> OrderValueModel:
        """Fit on a :func:`value_history` frame; returns self."""
        orders = _gamma_gamma(history["n_orders"], history["value_sum"])
        carts = _gamma_gamma(history["n_carts"], history["cart_value_sum"])
        p, q, g = orders if orders is not None else (np.nan,) * 3
        shape, ratio = 0.0, np.nan
        if orders is not None and carts is not None:
            shape = carts[0]
            ratio = (carts[0] * carts[2] / (carts[1] - 1)) / (p * g / (q - 1))
        self.params_ = dict(zip(_VALUE_PARAMS, (p, q, g, shape, ratio), strict=True))
        return self

    def predict(self, history: pd.DataFrame) -> np.ndarray:
        """Expected value of each customer's next order (rows of a :func:`value_history`)."""
        n, s, k, c = (history[col].to_numpy(float) for col in VALUE_COLUMNS)
        p, q, g, shape, ratio = (self.params_[k] for k in _VALUE_PARAMS)
        if np.isnan(p):
            return np.where(n > 0, s / np.maximum(n, 1.0), 0.0)
        w = shape / (p * ratio) if shape > 0 else 0.0
        return p * (g + s + w * c) / (q + p * n + shape * k - 1.0)
