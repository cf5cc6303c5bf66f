"""Evaluation metrics for binary scores (pure numpy functions).

Conventions: ``y`` is 0/1 (1 = churned), ``score`` is any score where higher means "more
likely 1"; probability metrics (Brier, ECE) need probabilities in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def _arrays(y: object, score: object) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float).ravel()
    s = np.asarray(score, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"shape mismatch: {y.shape} vs {s.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must be 0/1")
    if np.isnan(s).any():
        raise ValueError("score contains NaN")
    return y, s


def roc_auc(y: object, score: object) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties); NaN if one class."""
    y, s = _arrays(y, score)
    n_pos, n_neg = y.sum(), (1 - y).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pr_auc(y: object, score: object) -> float:
    """Area under the precision-recall curve as average precision (step-wise, no interpolation).

    AP = sum over distinct thresholds of (recall_k - recall_{k-1}) * precision_k, the same
    definition as ``sklearn.metrics.average_precision_score``. NaN if there is no positive.
    """
    y, s = _arrays(y, score)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(y)[last_of_tie]
    precision = tp / (last_of_tie + 1)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier_score(y: object, prob: object) -> float:
    """Mean squared difference between probability and outcome."""
    y, p = _arrays(y, prob)
    return float(np.mean((p - y) ** 2))


def expected_calibration_error(
    y: object, prob: object, n_bins: int = 10, strategy: str = "uniform"
) -> float:
    """Expected calibration error: sum_b (n_b / n) * |mean(y_b) - mean(p_b)|.

    ``strategy="uniform"`` (default) uses ``n_bins`` equal-width bins on [0, 1] (the last bin
    closed); ``"quantile"`` uses bins with equal counts (edges at the quantiles of ``prob``).
    """
    y, p = _arrays(y, prob)
    if len(p) == 0:
        return float("nan")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1))
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    bins = np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        mask = bins == b
        ece += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(ece)


def lift_at(y: object, score: object, fraction: float = 0.1) -> float:
    """Positive rate among the top ``fraction`` by score divided by the overall positive rate.

    The top group has ``ceil(fraction * n)`` rows; ties at the boundary are broken by order.
    """
    y, s = _arrays(y, score)
    if len(y) == 0 or y.mean() == 0:
        return float("nan")
    k = max(1, int(np.ceil(fraction * len(y))))
    top = np.argsort(-s, kind="mergesort")[:k]
    return float(y[top].mean() / y.mean())


def score_report(y: object, score: object, prefix: str = "", probability: bool = True) -> dict:
    """ROC AUC, PR AUC, top-decile lift and (for probabilities) Brier and ECE, as a dict.

    Keys are prefixed with ``prefix`` (e.g. ``"baseline_recency_"``).
    """
    out = {
        "roc_auc": roc_auc(y, score),
        "pr_auc": pr_auc(y, score),
        "lift_top_decile": lift_at(y, score, 0.1),
    }
    if probability:
        out["brier"] = brier_score(y, score)
        out["ece"] = expected_calibration_error(y, score)
    return {f"{prefix}{k}": v for k, v in out.items()}


def feature_importances(
    estimator: object,
    X: pd.DataFrame,
    y: object,
    *,
    scoring: str | None = None,
    n_repeats: int = 3,
    max_rows: int = 5000,
    random_state: int = 0,
) -> pd.Series:
    """Importances per column of ``X``: the estimator's ``feature_importances_`` if it has
    them, else permutation importance (``scoring``, on at most ``max_rows`` rows). The
    estimator must accept ``X.to_numpy()`` in column order. Sorted descending."""
    if hasattr(estimator, "feature_importances_"):
        values = np.asarray(estimator.feature_importances_, float)
    else:
        from sklearn.inspection import permutation_importance

        rows = np.random.default_rng(random_state).permutation(len(X))[:max_rows]
        res = permutation_importance(
            estimator,
            X.to_numpy()[rows],
            np.asarray(y)[rows],
            scoring=scoring,
            n_repeats=n_repeats,
            random_state=random_state,
            n_jobs=1,
        )
        values = res.importances_mean
    return pd.Series(values, index=X.columns, name="importance").sort_values(ascending=False)
