"""Evaluation plots as PNG files (matplotlib object API with the Agg canvas: no display,
no pyplot global state, safe in worker threads). Every function writes one file into
``out_dir`` (created if needed) and returns its path; figures are 6 x 4 in at 100 dpi.

``scores`` arguments accept one array or a mapping ``label -> array`` (e.g. the model and its
baselines on the same rows); for ROC and gains only the ranking matters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ml.metrics import expected_calibration_error, roc_auc

FIGSIZE, DPI = (6.0, 4.0), 100


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, out_dir: os.PathLike | str, name: str) -> Path:
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    fig.savefig(path / name, format="png", dpi=DPI)
    return path / name


def _named(scores: object) -> dict[str, np.ndarray]:
    if isinstance(scores, Mapping):
        return {str(k): np.asarray(v, float).ravel() for k, v in scores.items()}
    return {"model": np.asarray(scores, float).ravel()}


def _roc_points(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order], s[order]
    ends = np.r_[np.flatnonzero(np.diff(ss) != 0), len(ss) - 1]
    tp, fp = np.cumsum(ys)[ends], np.cumsum(1 - ys)[ends]
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


def roc_plot(y: object, scores: object, out_dir, name: str = "roc.png") -> Path:
    """ROC curves with the AUC of each score in the legend."""
    y = np.asarray(y, float).ravel()
    fig, ax = _figure()
    for label, s in _named(scores).items():
        fpr, tpr = _roc_points(y, s)
        ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc(y, s):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, out_dir, name)


def calibration_plot(
    y: object, prob: object, out_dir, name: str = "calibration.png", n_bins: int = 10
) -> Path:
    """Reliability diagram: observed rate vs mean predicted probability per quantile bin,
    with the share of rows per bin as bars and the (uniform-bin) ECE in the title."""
    y = np.asarray(y, float).ravel()
    fig, ax = _figure()
    for label, p in _named(prob).items():
        bins = pd.qcut(pd.Series(p).rank(method="first"), n_bins, labels=False)
        g = pd.DataFrame({"p": p, "y": y, "b": bins}).groupby("b").mean()
        ece = expected_calibration_error(y, p)
        ax.plot(g["p"], g["y"], marker="o", label=f"{label} (ECE {ece:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1, label="perfect")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability")
    ax.set(ylabel="observed rate", title="Calibration (quantile bins)")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, out_dir, name)


def gains_plot(y: object, scores: object, out_dir, name: str = "gains.png") -> Path:
    """Cumulative gains (share of positives captured vs share of rows targeted), with the
    lift at the top decile in the legend."""
    y = np.asarray(y, float).ravel()
    fig, ax = _figure()
    share = np.arange(1, len(y) + 1) / len(y)
    for label, s in _named(scores).items():
        captured = np.cumsum(y[np.argsort(-s, kind="mergesort")]) / max(y.sum(), 1)
        k = max(1, int(np.ceil(0.1 * len(y))))
        lift = captured[k - 1] / share[k - 1]
        ax.plot(np.r_[0, share], np.r_[0, captured], label=f"{label} (top-decile lift {lift:.2f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1, label="random")
    ax.set(xlabel="share of customers targeted", ylabel="share of positives captured")
    ax.set(title="Cumulative gains", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, out_dir, name)


def clv_decile_plot(
    actual: object, predicted: object, out_dir, name: str = "clv_deciles.png", n_bins: int = 10
) -> Path:
    """Mean predicted vs actual spend per predicted decile (1 = highest), one bar group per
    model; actual spend is drawn as a line per model's deciles."""
    from ml.clv_challenger import decile_table

    a = np.asarray(actual, float).ravel()
    models = _named(predicted)
    fig, ax = _figure()
    width = 0.8 / len(models)
    for i, (label, p) in enumerate(models.items()):
        t = decile_table(a, p, n_bins)
        x = t["decile"].to_numpy() + (i - (len(models) - 1) / 2) * width
        bars = ax.bar(x, t["predicted_mean"], width, alpha=0.6, label=f"{label} predicted")
        ax.plot(x, t["actual_mean"], marker="o", c=bars.patches[0].get_facecolor()[:3])
        ax.plot([], [], marker="o", c=bars.patches[0].get_facecolor()[:3], label=f"{label} actual")
    ax.set(xlabel="predicted decile (1 = highest)", ylabel="mean spend per customer")
    ax.set(title="CLV decile calibration", xticks=range(1, n_bins + 1))
    ax.legend(fontsize=8)
    return _save(fig, out_dir, name)


def importance_plot(
    importances: pd.Series, out_dir, name: str = "feature_importance.png", top: int = 15
) -> Path:
    """Horizontal bars of the ``top`` largest importances."""
    s = importances.sort_values(ascending=False).head(top)[::-1]
    fig, ax = _figure()
    ax.barh(list(map(str, s.index)), s.to_numpy())
    ax.tick_params(axis="y", labelsize=7)
    ax.set(xlabel=s.name or "importance", title=f"Feature importance (top {len(s)})")
    return _save(fig, out_dir, name)


def churn_plots(y: object, prob: object, baselines: Mapping[str, object], out_dir) -> dict:
    """ROC, gains (model + baselines) and calibration (model + the baselines in [0, 1]) for
    one evaluation set. Returns ``{"roc": path, "gains": path, "calibration": path}``."""
    scores = {"model": prob, **baselines}
    probs = {
        k: v
        for k, v in scores.items()
        if np.nanmin(np.asarray(v, float)) >= 0 and np.nanmax(np.asarray(v, float)) <= 1
    }
    return {
        "roc": roc_plot(y, scores, out_dir),
        "gains": gains_plot(y, scores, out_dir),
        "calibration": calibration_plot(y, probs, out_dir),
    }
