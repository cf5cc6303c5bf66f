"""Churn model figures: the champion's evaluation plots from the model registry
(``<model_dir>/churn/<version>/plots/*.png``, written when the model was trained) with
takeaways from its metrics and from the newest matured backtest (``ml.churn_backtest``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ml import registry
from report.charts import Chart, no_data

KIND = "churn"
# figure id -> (registry plot file, title, metric keys shown in the takeaway)
FIGURES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "churn-calibration": ("calibration.png", "Churn model calibration", ("ece", "brier")),
    "churn-lift": (
        "gains.png",
        "Churn model lift (cumulative gains)",
        ("lift_top_decile", "roc_auc"),
    ),
}
LABELS = {
    "ece": "ECE",
    "brier": "Brier",
    "lift_top_decile": "top-decile lift",
    "roc_auc": "ROC AUC",
}


def champion_plots(model_dir: os.PathLike | str | None) -> tuple[dict, dict[str, bytes], str]:
    """The champion's ``meta.json`` and plot bytes by file name, or empty ones and the reason."""
    if model_dir is None:
        return {}, {}, "no model registry configured"
    try:
        champion = registry.champion(model_dir, KIND)
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
        return {}, {}, f"the model registry cannot be read ({exc})"
    if champion is None:
        return {}, {}, f"no churn champion in {model_dir}"
    folder = Path(champion.path) / "plots"
    plots = (
        {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))} if folder.is_dir() else {}
    )
    return {**champion.meta, "version": champion.version}, plots, f"no plots in {folder}"


def _metrics(values: dict, keys: tuple[str, ...]) -> str:
    shown = [f"{LABELS[k]} {float(values[k]):.3f}" for k in keys if pd.notna(values.get(k))]
    return ", ".join(shown)


def churn_charts(model_dir: os.PathLike | str | None, backtest: pd.DataFrame) -> list[Chart]:
    """Calibration and lift figures of the churn champion (``no data`` when untrained)."""
    meta, plots, reason = champion_plots(model_dir)
    charts = []
    for cid, (file, title, keys) in FIGURES.items():
        if file not in plots:
            charts.append(no_data(cid, title, reason))
            continue
        as_of = str(meta.get("as_of") or "")[:10]
        text = f"Champion {meta['version']} (trained as of {as_of}), time-split holdout: "
        text += _metrics(meta.get("metrics", {}), keys) or "no metrics recorded"
        if not backtest.empty:
            row = backtest.iloc[0].to_dict()
            text += (
                f"; scores of {pd.Timestamp(row['as_of_date']):%Y-%m-%d} backtested on "
                f"{int(row['n']):,} customers: {_metrics(row, keys)}"
            )
        else:
            text += "; no stored score has matured for a backtest yet"
        charts.append(Chart(cid, title, text + ".", plots[file]))
    return charts
