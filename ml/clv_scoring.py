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

from ml.clv import ClvModel, fit_clv, summary_from_orders
from ml.clv_challenger import GbmClvModel, compare_clv_models, feasible_horizon
from ml.data import LifecycleData

__all__ = ["ClvScoring", "score_clv", "summarize_comparison"]


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


def _gbm_spend(
    data: LifecycleData, cutoff: pd.Timestamp, horizon_days: int
) -> tuple[GbmClvModel, pd.Series] | None:
    try:
        model = GbmClvModel(horizon_days=horizon_days, n_threads=1).fit(data, cutoff)
    except ValueError:  # too little history to build its training cutoffs
        return None
    return model, model.predict(data, cutoff).set_index("customer_id")["expected_spend"]


def score_clv(data: LifecycleData, cutoff: pd.Timestamp, horizon_days: int = 365) -> ClvScoring:
    """Score every customer with orders as of ``cutoff`` with the better CLV model.

    Parameters
    ----------
    data : LifecycleData
        Orders and customers (only data before ``cutoff`` is used for scoring).
    cutoff : Timestamp
        The scoring time (the end of the newest loaded day).
    horizon_days : int, default 365
        Prediction horizon of expected spend and CLV, and preferred holdout length.

    Returns
    -------
    ClvScoring
    """
    summary = summary_from_orders(data.orders, cutoff)
    btyd = fit_clv(summary)
    scores = btyd.score(summary, horizon_days=horizon_days).reset_index(drop=True)
    params = {**btyd.transaction_model.params_, **btyd.spend_model.params_}
    try:
        horizon = feasible_horizon(data, cutoff, preferred=horizon_days)
        result = compare_clv_models(data, cutoff, horizon)
    except ValueError as exc:
        comparison = {"winner": "btyd", "reason": f"not compared: {exc}", "horizon_days": 0}
        return ClvScoring(scores, "btyd", comparison, params, btyd)
    comparison = summarize_comparison(result)
    fitted = _gbm_spend(data, cutoff, horizon_days) if result["winner"] == "gbm" else None
    if fitted is None:
        if result["winner"] == "gbm":
            comparison["reason"] += "; the GBM could not be trained on the full history"
        return ClvScoring(scores, "btyd", comparison, params, btyd, None, result["holdout"])
    gbm_model, spend = fitted
    gbm = spend.reindex(scores["customer_id"]).to_numpy()
    keep = ~np.isnan(gbm)
    scores.loc[keep, "expected_spend_12m"] = gbm[keep]
    scores.loc[keep, "clv"] = gbm[keep]
    scores.loc[keep, ["clv_lower", "clv_upper"]] = np.nan
    return ClvScoring(scores, "gbm", comparison, params, btyd, gbm_model, result["holdout"])
