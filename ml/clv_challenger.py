"""CLV champion/challenger: BTYD (BG/NBD + Gamma-Gamma) vs gradient boosting on features.

Both predict a customer's spend in the next ``horizon_days`` (365 in production). Spend is the
``order_total`` of non-cancelled orders placed in ``(cutoff, cutoff + horizon]``, a returned
order counting 0 (as in :func:`ml.clv.summary_from_orders`), judged by the order versions
known at the end of the data.

Time holdout (:func:`compare_clv_models`): with ``E = as_of - horizon`` both models are fitted
with data known at ``E`` only, score the customers with a non-cancelled order by ``E`` and
are compared with their spend in ``(E, as_of]``. The challenger (:class:`GbmClvModel`) learns
from past cutoffs ``E - horizon - k * step`` whose outcomes are complete by ``E``, so it needs
about ``2 * horizon + (n_cutoffs - 1) * step`` days of history plus some before the first
cutoff; :func:`feasible_horizon` gives the longest horizon the data allows.

The challenger is a two-part model, like the Bayes-optimal predictor of a purchase process
with customer-level order values: spend = E[orders] x E[value per order]. The number of
non-cancelled orders is boosted (Poisson loss) as a multiplicative correction of BG/NBD's
expected purchases (an offset); the value per order is the empirical-Bayes Gamma-Gamma
posterior mean (:class:`OrderValueModel`) from every order's value (cancelled and returned
ones are draws of the same basket size) and, as weaker evidence, the abandoned carts' values.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from ml._threads import limit_predict_threads, limit_threads
from ml.clv import data_summary, fit_clv
from ml.clv_value import (
    MIN_ROWS,
    OrderValueModel,
    horizon_season,
    value_history,
    value_season,
)
from ml.data import LifecycleData, to_timestamp
from ml.features import DAY, build_features

# Order values go to the value model; the order-count model sees the purchase behaviour only.
MONETARY = (
    "monetary_total",
    "monetary_mean",
    "spend_90d",
    "spend_prior_90d",
    "spend_trend",
    "cart_value_mean",
)
MIN_OFFSET = 0.02  # expected purchases: floor of the offset (rows weigh in proportionally)


def _future_window(data: LifecycleData, cutoff: object, horizon_days: int, as_of=None):
    """(population at ``cutoff``, its non-cancelled orders in ``(cutoff, cutoff + horizon]``)."""
    cutoff = to_timestamp(cutoff)
    as_of = data.end if as_of is None else to_timestamp(as_of)
    end = cutoff + horizon_days * DAY
    if end > as_of:
        raise ValueError(f"spend after {cutoff} not matured: {end} > as_of {as_of}")
    before = data.snapshot(cutoff)
    population = pd.Index(
        sorted(before.loc[before["status"] != "cancelled", "customer_id"].unique()),
        name="customer_id",
    )
    snap = data.snapshot(as_of)
    win = snap[(snap["ordered_at"] > cutoff) & (snap["ordered_at"] <= end)]
    return population, win[win["status"] != "cancelled"]


def _future_targets(data: LifecycleData, cutoff: object, horizon_days: int, as_of=None):
    """Columns ``orders`` (non-cancelled, returned included) and ``spend`` (returned = 0) in
    ``(cutoff, cutoff + horizon]`` by customer_id, for the population at ``cutoff``."""
    population, win = _future_window(data, cutoff, horizon_days, as_of)
    value = win["order_total"].where(win["status"] != "returned", 0.0).fillna(0.0)
    by = win["customer_id"]
    out = pd.DataFrame(
        {"orders": by.groupby(by).size().astype(float), "spend": value.groupby(by).sum()}
    )
    return out.reindex(population, fill_value=0.0)


def future_spend(data: LifecycleData, cutoff: object, horizon_days: int, as_of=None) -> pd.Series:
    """Spend in ``(cutoff, cutoff + horizon]`` of every customer with an order by ``cutoff``.

    ``ValueError`` if the window ends after ``as_of`` (default ``data.end``).
    """
    return _future_targets(data, cutoff, horizon_days, as_of)["spend"].rename("spend")


def future_orders(data: LifecycleData, cutoff: object, horizon_days: int, as_of=None) -> pd.Series:
    """Non-cancelled orders (returned ones included) in ``(cutoff, cutoff + horizon]``, same
    population and ``ValueError`` as :func:`future_spend`."""
    return _future_targets(data, cutoff, horizon_days, as_of)["orders"].rename("orders")


def normalized_gini(actual: object, predicted: object) -> float:
    """Gini of the gains (Lorenz) curve of ``actual`` ordered by ``predicted``, divided by the
    Gini of the perfect ordering. 1 = perfect ranking, 0 = random, -1 = reversed. Ties in
    ``predicted`` are averaged (for a 0/1 ``actual`` it equals ``2 * AUC - 1``)."""
    a = np.asarray(actual, float).ravel()
    p = np.asarray(predicted, float).ravel()
    if a.shape != p.shape or np.isnan(p).any() or np.isnan(a).any():
        raise ValueError("actual and predicted must have the same shape and no NaN")

    def gini(order_by: np.ndarray) -> float:
        order = np.argsort(-order_by, kind="mergesort")
        s, v = order_by[order], a[order]
        ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last row of each tie group
        cum_a = np.r_[0.0, np.cumsum(v)[ends] / v.sum()]
        cum_n = np.r_[0.0, (ends + 1) / len(v)]
        area = np.sum(np.diff(cum_n) * (cum_a[1:] + cum_a[:-1]) / 2)
        return 2.0 * area - 1.0

    if len(a) == 0 or a.sum() <= 0:
        return float("nan")
    best = gini(a)
    return float(gini(p) / best) if best > 0 else float("nan")


def decile_table(actual: object, predicted: object, n_bins: int = 10) -> pd.DataFrame:
    """Mean predicted and actual per predicted-value bin (equal counts; decile 1 = highest)."""
    a, p = np.asarray(actual, float), np.asarray(predicted, float)
    order = np.argsort(-p, kind="mergesort")
    decile = np.empty(len(p), int)
    decile[order] = np.arange(len(p)) * n_bins // max(len(p), 1) + 1
    df = pd.DataFrame({"decile": decile, "predicted": p, "actual": a})
    out = df.groupby("decile").agg(
        n=("actual", "size"), predicted_mean=("predicted", "mean"), actual_mean=("actual", "mean")
    )
    return out.reset_index()


def clv_metrics(actual: object, predicted: object, n_bins: int = 10) -> dict:
    """normalized Gini, decile calibration error and aggregate error of predicted spend.

    ``decile_calibration_error`` = sum_b (n_b / n) |pred_b - actual_b| / mean(actual);
    ``aggregate_error`` = (sum predicted - sum actual) / sum actual (signed).
    """
    a, p = np.asarray(actual, float), np.asarray(predicted, float)
    table = decile_table(a, p, n_bins)
    weights = table["n"] / table["n"].sum()
    gap = (weights * (table["predicted_mean"] - table["actual_mean"]).abs()).sum()
    return {
        "gini": normalized_gini(a, p),
        "decile_calibration_error": float(gap / a.mean()) if a.mean() > 0 else float("nan"),
        "aggregate_error": float((p.sum() - a.sum()) / a.sum()) if a.sum() > 0 else float("nan"),
        "predicted_total": float(p.sum()),
        "actual_total": float(a.sum()),
        "n": float(len(a)),
    }


def count_features(features: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Inputs of the order-count model: :func:`ml.features.build_features` without the
    monetary columns, plus abandoned carts in all and before the last order, cancelled orders
    and per-day rates of orders, carts and both since sign-up (``history``:
    :func:`value_history`)."""
    X = features.drop(columns=[c for c in MONETARY if c in features.columns])
    h = history.reindex(X.index).fillna(0.0)
    age = X["days_since_signup"].fillna(X["tenure_days"]).clip(lower=1.0)
    carts = h["n_carts"]
    return X.assign(
        carts_total=carts,
        carts_before_last=carts - X["abandoned_since_last_order"],
        n_cancelled=(h["n_orders"] - X["frequency"]).clip(lower=0.0),
        order_rate=X["frequency"] / age,
        cart_rate=carts / age,
        activity_rate=(X["frequency"] + carts) / age,
    )


def _quantile_edges(X: np.ndarray, max_bins: int = 255) -> list[np.ndarray | None]:
    """Per column, unweighted quantile thresholds when it has more than ``max_bins`` values
    (gradient boosting bins weighted rows by slow weighted percentiles; pre-binned columns
    with few distinct values skip that)."""
    edges = []
    for col in X.T:
        col = col[~np.isnan(col)]
        if np.unique(col).size <= max_bins:
            edges.append(None)
            continue
        q = np.linspace(0, 100, max_bins + 1)[1:-1]
        edges.append(np.unique(np.percentile(col, q, method="averaged_inverted_cdf")))
    return edges


def _binned(X: np.ndarray, edges: list[np.ndarray | None], copy: bool = True) -> np.ndarray:
    """``X`` with each column of ``edges`` replaced by its bin number (NaN kept); in place
    when ``copy`` is False and ``X`` is a float array (a million rows: a 0.3 GB copy less;
    pass ``frame.to_numpy(float, copy=True)``, never a view of a frame)."""
    out = X.astype(float, copy=copy)
    for j, e in enumerate(edges):
        if e is not None:
            out[:, j] = np.where(np.isnan(X[:, j]), np.nan, np.searchsorted(e, X[:, j]))
    return out


def _offset(X: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """BG/NBD expected purchases in the horizon (the observed order rate where missing)."""
    naive = X["frequency"] / X["days_since_signup"].fillna(X["tenure_days"]).clip(lower=30.0)
    expected = X.get("btyd_expected_purchases", pd.Series(np.nan, X.index))
    expected = expected.fillna(naive * horizon_days)
    return np.clip(expected.to_numpy(float), MIN_OFFSET, None)


class GbmClvModel:
    """Two-part CLV: boosted order count (Poisson) x empirical-Bayes value per order.

    Spend in the next ``horizon_days`` = ``spend_factor_ x orders x value``: ``orders`` =
    BG/NBD's expected purchases (``btyd_expected_purchases`` of the features, an offset) times
    a gradient-boosted correction fitted on stacked past cutoffs (Poisson loss on
    ``orders / offset`` weighted by the offset, i.e. a log-link model with offset);
    ``value`` = :class:`OrderValueModel`; ``spend_factor_`` (share of the order value that
    counts: returned orders count 0) makes the training predictions add up to the actual spend.

    Parameters
    ----------
    horizon_days, n_cutoffs, cutoff_step_days : int
        Outcome horizon; number of past cutoffs stacked for training and days between them.
    loss : str
        ``"poisson"`` (default, allows zero counts) or ``"squared_error"``.
    max_iter, learning_rate, random_state, n_threads :
        Gradient boosting settings; ``n_threads`` limits OpenMP threads (None: library default;
        scoring 100 000 customers or more uses every core).

    Attributes
    ----------
    model_ : HistGradientBoostingRegressor
        Correction of the expected order count.
    value_model_ : OrderValueModel
        Fitted on the orders and carts known at the fit's ``as_of``.
    spend_factor_ : float
    season_ : pandas.Series
        Monthly index of order values (:func:`value_season`); values are deflated by it and
        the prediction multiplied by its mean over the horizon (:func:`horizon_season`).
    feature_names_ : list of str
        Inputs of ``model_`` (:func:`count_features`).
    bin_edges_ : list
        Quantile pre-binning of those inputs (:func:`_quantile_edges`).
    cutoffs_ : list of pandas.Timestamp
    """

    def __init__(
        self,
        horizon_days: int = 365,
        n_cutoffs: int = 6,
        cutoff_step_days: int = 30,
        loss: str = "poisson",
        max_iter: int = 100,
        learning_rate: float = 0.05,
        random_state: int = 0,
        n_threads: int | None = 1,
    ) -> None:
        self.horizon_days = horizon_days
        self.n_cutoffs = n_cutoffs
        self.cutoff_step_days = cutoff_step_days
        self.loss = loss
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.n_threads = n_threads

    def _threads(self):
        return limit_threads(self.n_threads)

    def fit(self, data: LifecycleData, as_of: object) -> GbmClvModel:
        """Fit on cutoffs ``as_of - horizon - k * step`` with outcomes known at ``as_of``."""
        as_of = to_timestamp(as_of)
        known = data.as_of(as_of)
        h, step = self.horizon_days * DAY, self.cutoff_step_days * DAY
        self.season_ = value_season(known, as_of)
        slices = []
        for k in reversed(range(self.n_cutoffs)):
            cutoff = as_of - h - k * step
            X = build_features(known, cutoff, self.horizon_days)
            if len(X) >= MIN_ROWS:
                hist = value_history(known, cutoff, self.season_).reindex(X.index)
                hist["horizon_season"] = horizon_season(self.season_, cutoff, self.horizon_days)
                y = _future_targets(known, cutoff, self.horizon_days, as_of).reindex(X.index)
                slices.append((cutoff, count_features(X, hist), hist, y))
        if not slices:
            raise ValueError(f"no usable CLV training cutoff as of {as_of}: not enough history")
        self.value_model_ = OrderValueModel().fit(value_history(known, as_of, self.season_))
        self.feature_names_ = sorted(set().union(*(s[1].columns for s in slices)))
        X = pd.concat([s[1].reindex(columns=self.feature_names_, fill_value=0.0) for s in slices])
        y = pd.concat([s[3] for s in slices]).fillna(0.0)
        offset = _offset(X, self.horizon_days)
        self.model_ = HistGradientBoostingRegressor(
            loss=self.loss,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=self.random_state,
        )
        self.bin_edges_ = _quantile_edges(X.to_numpy(float))
        Xb = _binned(X.to_numpy(float, copy=True), self.bin_edges_, copy=False)
        with self._threads():
            self.model_.fit(Xb, y["orders"].to_numpy() / offset, sample_weight=offset)
            orders = self.model_.predict(Xb) * offset
        hist = pd.concat([s[2] for s in slices]).fillna(0.0)
        value = self.value_model_.predict(hist) * hist["horizon_season"].to_numpy()
        predicted = float(np.sum(orders * value))
        self.spend_factor_ = float(y["spend"].sum() / predicted) if predicted > 0 else 1.0
        self.cutoffs_ = [s[0] for s in slices]
        return self

    def predict(self, data: LifecycleData, as_of: object, features=None) -> pd.DataFrame:
        """Expected spend over the horizon: columns customer_id, expected_spend.

        ``features``: :func:`ml.features.build_features` at ``as_of`` with this model's
        ``horizon_days`` (built when None); the order and cart values come from ``data``.
        """
        if not hasattr(self, "model_"):
            raise RuntimeError("GbmClvModel is not fitted")
        X = build_features(data, as_of, self.horizon_days) if features is None else features
        out = pd.DataFrame({"customer_id": X.index.astype(object)})
        if len(X) == 0:
            return out.assign(expected_spend=pd.Series(dtype=float))
        hist = value_history(data, as_of, self.season_).reindex(X.index).fillna(0.0)
        X = count_features(X, hist).reindex(columns=self.feature_names_, fill_value=0.0)
        with limit_predict_threads(self.n_threads, len(X)):
            Xb = _binned(X.to_numpy(float, copy=True), self.bin_edges_, copy=False)
            orders = self.model_.predict(Xb) * _offset(X, self.horizon_days)
        value = self.value_model_.predict(hist)
        value = value * horizon_season(self.season_, as_of, self.horizon_days)
        out["expected_spend"] = self.spend_factor_ * orders * value
        return out


def btyd_expected_spend(data: LifecycleData, cutoff: object, horizon_days: int, model="bgnbd"):
    """BTYD expected spend over the horizon (``fit_clv`` on the RFM summary at ``cutoff``);
    the same quantity as ``expected_spend_12m`` of :meth:`ml.clv.ClvModel.score`."""
    summary = data_summary(data, cutoff)
    clv = fit_clv(summary, model=model)
    x, tx, T, m = (
        summary[c].to_numpy(float) for c in ("frequency", "recency", "T", "monetary_value")
    )
    spend = clv.transaction_model.predict(horizon_days, x, tx, T)
    spend = spend * clv.spend_model.conditional_expected_average_profit(x, m)
    return pd.Series(
        np.asarray(spend, float), index=summary["customer_id"].astype(str), name="btyd"
    )


def feasible_horizon(
    data: LifecycleData,
    as_of: object,
    preferred: int = 365,
    n_cutoffs: int = 6,
    cutoff_step_days: int = 30,
    min_history_days: int = 90,
    granularity: int = 30,
) -> int:
    """Longest horizon (<= ``preferred``, a multiple of ``granularity``) for which the
    holdout of :func:`compare_clv_models` has ``min_history_days`` of orders before its
    earliest training cutoff. ``ValueError`` if even ``granularity`` days do not fit."""
    span = (to_timestamp(as_of) - data.orders["ordered_at"].min()) / DAY
    room = (span - min_history_days - (n_cutoffs - 1) * cutoff_step_days) / 2
    horizon = min(preferred, int(room // granularity) * granularity)
    if horizon < granularity:
        raise ValueError(f"history of {span:.0f} days is too short for a CLV holdout")
    return horizon


def _winner(results: dict, gini_tolerance: float, max_abs_aggregate_error: float):
    names = [n for n in results if abs(results[n]["aggregate_error"]) <= max_abs_aggregate_error]
    note = ""
    if not names:
        names, note = list(results), " (no model within the aggregate error limit)"
    best = max(names, key=lambda n: results[n]["gini"])
    close = [n for n in names if results[best]["gini"] - results[n]["gini"] <= gini_tolerance]
    if len(close) > 1:
        best = min(close, key=lambda n: results[n]["decile_calibration_error"])
        return best, f"Gini within {gini_tolerance} of each other: better decile calibration{note}"
    return best, f"higher normalized Gini{note}"


def compare_clv_models(
    data: LifecycleData,
    as_of: object,
    horizon_days: int = 365,
    *,
    n_cutoffs: int = 6,
    cutoff_step_days: int = 30,
    btyd_model: str = "bgnbd",
    gini_tolerance: float = 0.005,
    max_abs_aggregate_error: float = 0.25,
    extra_scores: Mapping[str, pd.Series] | None = None,
    random_state: int = 0,
    n_threads: int | None = 1,
) -> dict:
    """BTYD vs gradient boosting on the time holdout ``(as_of - horizon, as_of]``.

    Winner: among the models whose ``|aggregate_error|`` is at most
    ``max_abs_aggregate_error`` (all, if none), the highest normalized Gini; models within
    ``gini_tolerance`` of the best are decided by the lower decile calibration error (BTYD,
    the simpler model, is listed first and wins exact ties).

    Parameters
    ----------
    extra_scores : mapping name -> Series indexed by customer_id, optional
        Further predictions to evaluate on the same rows (e.g. an oracle's true expected
        spend); rows missing from a series are left out of that series' metrics only.

    Returns
    -------
    dict
        ``btyd`` and ``gbm``: metrics (:func:`clv_metrics`); ``winner``, ``reason``;
        ``holdout_cutoff``, ``horizon_days``, ``n_holdout``; ``deciles``: name -> decile
        table; ``holdout``: DataFrame customer_id, actual, btyd, gbm (for plots); ``extra``:
        metrics of ``extra_scores``; ``gbm_feature_names``.
    """
    as_of = to_timestamp(as_of)
    cutoff = as_of - horizon_days * DAY
    known = data.as_of(cutoff)
    actual = future_spend(data.as_of(as_of), cutoff, horizon_days, as_of=as_of)
    if len(actual) < MIN_ROWS:
        raise ValueError(f"only {len(actual)} customers at the holdout cutoff {cutoff}")
    btyd = btyd_expected_spend(known, cutoff, horizon_days, btyd_model).reindex(actual.index)
    gbm = GbmClvModel(
        horizon_days, n_cutoffs, cutoff_step_days, random_state=random_state, n_threads=n_threads
    ).fit(known, cutoff)
    gbm_pred = gbm.predict(known, cutoff).set_index("customer_id")["expected_spend"]
    holdout = pd.DataFrame(
        {"actual": actual, "btyd": btyd, "gbm": gbm_pred.reindex(actual.index)}
    ).rename_axis("customer_id")
    if holdout.isna().any().any():
        raise RuntimeError("a model did not score every holdout customer")
    results = {n: clv_metrics(holdout["actual"], holdout[n]) for n in ("btyd", "gbm")}
    winner, reason = _winner(results, gini_tolerance, max_abs_aggregate_error)
    extra = {}
    for name, series in (extra_scores or {}).items():
        s = pd.Series(series).reindex(holdout.index)
        ok = s.notna().to_numpy()
        extra[name] = clv_metrics(holdout["actual"].to_numpy()[ok], s.to_numpy()[ok])
    return {
        **results,
        "winner": winner,
        "reason": reason,
        "holdout_cutoff": cutoff,
        "horizon_days": int(horizon_days),
        "n_holdout": int(len(holdout)),
        "deciles": {n: decile_table(holdout["actual"], holdout[n]) for n in ("btyd", "gbm")},
        "holdout": holdout.reset_index(),
        "extra": extra,
        "gbm_feature_names": gbm.feature_names_,
    }
