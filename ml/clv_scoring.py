"""Nightly CLV scoring: BTYD champion, gradient-boosting challenger, the better one scores.

Every customer with orders gets BTYD's P(alive), expected orders, expected spend and a
discounted CLV with its interval (:class:`ml.clv.ClvModel`). Both models are then compared on
the longest time holdout the history allows (:func:`ml.clv_challenger.compare_clv_models`);
when gradient boosting wins, its 12-month spend replaces BTYD's expected spend and CLV (no
interval: the GBM has none), while P(alive) and expected orders stay BTYD's. When the history
is too short to compare, or the GBM cannot be trained, BTYD scores and the reason says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.clv import ClvModel, data_summary, fit_clv
from ml.clv_challenger import GbmClvModel, compare_clv_models, feasible_horizon
from ml.data import LifecycleData
from ml.features import with_btyd_horizon

__all__ = ["ClvScoring", "score_clv", "score_with", "summarize_comparison"]


@dataclass
class ClvScoring:
    """Outcome of :func:`score_clv`.

    Attributes
    ----------
    scores : DataFrame
        One row per customer with orders: customer_id, p_alive, expected_orders_12m,
        expected_spend_12m, clv, clv_lower, clv_upper.
    winner : str
        ``"btyd"`` or ``"gbm"``: the model whose spend is in ``scores``.
    comparison : dict
        Scalar summary of the holdout comparison (:func:`summarize_comparison`).
    params : dict
        Fitted BTYD parameters (transaction and spend models).
    btyd_model : ClvModel
        The fitted BTYD model.
    gbm_model : GbmClvModel or None
        The fitted gradient-boosting model, when it scores.
    holdout : DataFrame or None
        customer_id, actual, btyd, gbm on the holdout (for the decile plot); None when the
        models were not compared.
    """

    scores: pd.DataFrame
    winner: str
    comparison: dict
    params: dict
    btyd_model: ClvModel
    gbm_model: GbmClvModel | None = None
    holdout: pd.DataFrame | None = field(default=None, repr=False)


def summarize_comparison(result: dict) -> dict:
    """The JSON-friendly part of :func:`compare_clv_models`' result: winner, reason, horizon,
    holdout size and each model's scalar metrics."""
    scalars = {
        name: {k: float(v) for k, v in result[name].items() if isinstance(v, int | float)}
        for name in ("btyd", "gbm")
    }
    return {
        "winner": result["winner"],
        "reason": result["reason"],
        "horizon_days": result["horizon_days"],
        "n_holdout": result["n_holdout"],
        **scalars,
    }


def _gbm_fit(data: LifecycleData, cutoff: pd.Timestamp, horizon_days: int) -> GbmClvModel | None:
    try:
        return GbmClvModel(horizon_days=horizon_days, n_threads=1).fit(data, cutoff)
    except ValueError:  # too little history to build its training cutoffs
        return None


def score_with(
    btyd: ClvModel,
    gbm: GbmClvModel | None,
    data: LifecycleData,
    cutoff: pd.Timestamp,
    horizon_days: int = 365,
    features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Score every customer with orders as of ``cutoff`` with fitted models: BTYD's
    P(alive), expected orders, spend and CLV with intervals; when ``gbm`` is given, its
    spend replaces BTYD's spend and CLV (no interval: the GBM has none). Used both on the
    nights the models are trained and on the nights they only score. ``features``:
    :func:`ml.features.build_features` at ``cutoff`` for any horizon, when the caller has it
    (its BTYD columns are recomputed for the GBM's horizon)."""
    summary = data_summary(data, cutoff)
    # the GBM's spend replaces BTYD's CLV, whose interval would be dropped: not computed
    scores = btyd.score(summary, horizon_days=horizon_days, clv_interval=gbm is None)
    scores = scores.reset_index(drop=True)
    if gbm is None:
        return scores
    if features is not None:
        features = with_btyd_horizon(features, data, cutoff, gbm.horizon_days)
    spend = gbm.predict(data, cutoff, features=features).set_index("customer_id")
    spend = spend["expected_spend"]
    values = spend.reindex(scores["customer_id"]).to_numpy()
    keep = ~np.isnan(values)
    scores.loc[keep, "expected_spend_12m"] = values[keep]
    scores.loc[keep, "clv"] = values[keep]
    scores.loc[keep, ["clv_lower", "clv_upper"]] = np.nan
    return scores


def score_clv(
    data: LifecycleData,
    cutoff: pd.Timestamp,
    horizon_days: int = 365,
    max_train_customers: int | None = None,
    features: pd.DataFrame | None = None,
) -> ClvScoring:
    """Fit both CLV models as of ``cutoff``, compare them, score with the better one.

    Parameters
    ----------
    data : LifecycleData
        Orders and customers (only data before ``cutoff`` is used for scoring).
    cutoff : Timestamp
        The scoring time (the end of the newest loaded day).
    horizon_days : int, default 365
        Prediction horizon of expected spend and CLV, and preferred holdout length.
    max_train_customers : int, optional
        Compare and train the GBM on this many customers at most
        (:meth:`LifecycleData.sample_customers`); BTYD is fitted on everyone (its fit is
        cheap) and every customer is scored.
    features : DataFrame, optional
        :func:`ml.features.build_features` at ``cutoff`` (see :func:`score_with`).

    Returns
    -------
    ClvScoring
    """
    summary = data_summary(data, cutoff)
    btyd = fit_clv(summary)
    params = {**btyd.transaction_model.params_, **btyd.spend_model.params_}
    train = data.sample_customers(max_train_customers)
    try:
        horizon = feasible_horizon(train, cutoff, preferred=horizon_days)
        result = compare_clv_models(train, cutoff, horizon)
    except ValueError as exc:
        comparison = {"winner": "btyd", "reason": f"not compared: {exc}", "horizon_days": 0}
        return ClvScoring(
            score_with(btyd, None, data, cutoff, horizon_days), "btyd", comparison, params, btyd
        )
    comparison = summarize_comparison(result)
    comparison["n_train_customers"] = train.n_buyers
    gbm = _gbm_fit(train, cutoff, horizon_days) if result["winner"] == "gbm" else None
    if gbm is None and result["winner"] == "gbm":
        comparison["reason"] += "; the GBM could not be trained on the full history"
    scores = score_with(btyd, gbm, data, cutoff, horizon_days, features)
    winner = "btyd" if gbm is None else "gbm"
    return ClvScoring(scores, winner, comparison, params, btyd, gbm, result["holdout"])
