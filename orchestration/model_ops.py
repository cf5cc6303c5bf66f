"""Nightly model operations around ``ml/`` (glue, no dagster import): train a churn
candidate, register it with its plots and card, gate it against the baselines and the
champion, score with the champion, measure drift and backtest earlier scores."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ml import registry
from ml.backtest import backtest_scores
from ml.churn import ChurnModel
from ml.clv_challenger import GbmClvModel, compare_clv_models, feasible_horizon
from ml.data import LifecycleData
from ml.drift import drift_summary, feature_psi
from ml.features import build_features
from ml.gate import GateResult, gate
from ml.plots import churn_plots

CHURN = "churn"


@dataclass
class ChurnOutcome:
    candidate: registry.ModelVersion
    gate: GateResult
    champion: registry.ModelVersion | None
    scores: pd.DataFrame  # customer_id, churn_probability (empty when there is no champion)
    drift: pd.DataFrame
    plots: dict[str, Path] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        return self.champion is not None and self.champion.version == self.candidate.version


def train_and_score_churn(
    data: LifecycleData, cutoff: pd.Timestamp, model_dir: Path, horizon_days: int
) -> ChurnOutcome:
    """Fit a candidate as of ``cutoff``; promote it only if it passes the gate (or if there
    is no champion yet); score every customer with the champion."""
    candidate = ChurnModel(horizon_days=horizon_days, n_threads=1).fit(data, cutoff)
    ev = candidate.eval_frame_
    baselines = {"recency days": ev["recency_days"].to_numpy()}
    if np.isfinite(ev["btyd_p_no_purchase"]).all():
        baselines["BTYD P(no purchase)"] = ev["btyd_p_no_purchase"].to_numpy()
    with tempfile.TemporaryDirectory() as tmp:
        plots = churn_plots(ev["churned"], ev["churn_probability"], baselines, tmp)
        version = registry.register(
            model_dir,
            CHURN,
            candidate,
            as_of=cutoff,
            training_window=(candidate.cutoffs_[0], cutoff),
            features=candidate.feature_names_,
            metrics=candidate.metrics_,
            data_fingerprint=registry.data_fingerprint(data),
            params={"horizon_days": horizon_days},
            attachments=plots.values(),
        )
    current = registry.champion(model_dir, CHURN)
    verdict = gate(candidate.metrics_, current.metrics if current else None)
    if verdict.passed or current is None:
        # The very first model is promoted even when it fails (there is nothing else to
        # score with); the gate's failure still shows in the asset check.
        registry.promote(model_dir, CHURN, version.version)
    champion = registry.champion(model_dir, CHURN)
    scores = pd.DataFrame({"customer_id": [], "churn_probability": []})
    if champion is not None:
        scores = registry.load(model_dir, CHURN).predict_proba(data, cutoff)
    reference = build_features(data, candidate.cutoffs_[-1], horizon_days)
    drift = feature_psi(reference, build_features(data, cutoff, horizon_days))
    plot_paths = {k: version.path / "plots" / Path(p).name for k, p in plots.items()}
    return ChurnOutcome(version, verdict, champion, scores, drift, plot_paths)


def run_record(outcome: ChurnOutcome, as_of: dt.date) -> dict:
    """The ``ml.model_runs`` row of a churn run (metrics plus the gate's verdict)."""
    metrics = {
        **outcome.candidate.metrics,
        "gate_passed": outcome.gate.passed,
        "gate_reasons": outcome.gate.reasons,
        "drift": drift_summary(outcome.drift),
    }
    return {
        "model_kind": CHURN,
        "model_version": outcome.candidate.version,
        "as_of_date": as_of,
        "metrics": metrics,
        "is_champion": outcome.promoted,
    }


def churn_backtest(
    scores: pd.DataFrame, data: LifecycleData, cutoff: pd.Timestamp, horizon_days: int
) -> pd.DataFrame:
    """Quality of the scores written on earlier as-of dates whose horizon has passed."""
    return backtest_scores(scores, data, horizon_days=horizon_days, data_end=cutoff)


def compare_clv(data: LifecycleData, cutoff: pd.Timestamp, horizon_days: int = 365) -> dict:
    """BTYD vs gradient boosting on the longest time holdout the history allows (up to
    ``horizon_days``). Returns the winner, the reason and each model's scalar metrics; when
    the history is too short to compare, BTYD stays champion and the reason says why."""
    try:
        horizon = feasible_horizon(data, cutoff, preferred=horizon_days)
        result = compare_clv_models(data, cutoff, horizon)
    except ValueError as exc:
        return {"winner": "btyd", "reason": f"not compared: {exc}", "horizon_days": 0}
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


def gbm_clv_scores(
    data: LifecycleData, cutoff: pd.Timestamp, btyd_scores: pd.DataFrame, horizon_days: int = 365
) -> pd.DataFrame | None:
    """When gradient boosting won, its 12-month spend replaces BTYD's expected spend and CLV
    (undiscounted, no interval: the GBM has none); P(alive) and expected orders stay BTYD's.
    None if the GBM cannot be trained on this history (BTYD keeps scoring)."""
    try:
        model = GbmClvModel(horizon_days=horizon_days, n_threads=1).fit(data, cutoff)
    except ValueError:
        return None
    spend = model.predict(data, cutoff).set_index("customer_id")["expected_spend"]
    out = btyd_scores.copy()
    gbm = spend.reindex(out["customer_id"]).to_numpy()
    keep = ~np.isnan(gbm)
    out.loc[keep, "expected_spend_12m"] = gbm[keep]
    out.loc[keep, "clv"] = gbm[keep]
    out.loc[keep, ["clv_lower", "clv_upper"]] = np.nan
    return out
