"""Nightly model operations around ``ml/`` (glue, no dagster import): train a churn
candidate, register it with its plots and card, gate it against the baselines and the
champion, score with the champion, measure drift and backtest earlier scores; score CLV with
the better of BTYD and gradient boosting and register the night's CLV models."""

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
from ml.clv_scoring import ClvScoring, score_clv
from ml.data import LifecycleData
from ml.drift import drift_summary, feature_psi
from ml.features import build_features
from ml.gate import GateResult, gate
from ml.plots import churn_plots, clv_decile_plot, importance_plot

CHURN = "churn"
CLV = "clv"
BTYD_INPUTS = ["frequency", "recency", "T", "monetary_value"]


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
        plots["feature_importance"] = importance_plot(candidate.feature_importances_, tmp)
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


@dataclass
class ClvOutcome:
    scoring: ClvScoring
    version: registry.ModelVersion
    plots: dict[str, Path] = field(default_factory=dict)


def train_and_score_clv(
    data: LifecycleData, cutoff: pd.Timestamp, model_dir: Path, horizon_days: int = 365
) -> ClvOutcome:
    """Score with the better CLV model (:func:`ml.clv_scoring.score_clv`) and register the
    night's models (BTYD, plus the GBM when it scores) with the holdout decile plot and a
    model card. There is no gate: the holdout comparison picks the scorer every night."""
    scoring = score_clv(data, cutoff, horizon_days)
    metrics = {"scored_by_gbm": float(scoring.winner == "gbm")}
    for name in ("btyd", "gbm"):
        for metric, value in scoring.comparison.get(name, {}).items():
            metrics[f"{name}_{metric}"] = value
    with tempfile.TemporaryDirectory() as tmp:
        plots = {}
        if scoring.holdout is not None:
            h = scoring.holdout
            plots["clv_deciles"] = clv_decile_plot(
                h["actual"], {m: h[m] for m in ("btyd", "gbm")}, tmp
            )
        version = registry.register(
            model_dir,
            CLV,
            {"btyd": scoring.btyd_model, "gbm": scoring.gbm_model},
            as_of=cutoff,
            training_window=(data.orders["ordered_at"].min(), cutoff),
            features=scoring.gbm_model.feature_names_ if scoring.gbm_model else BTYD_INPUTS,
            metrics=metrics,
            data_fingerprint=registry.data_fingerprint(data),
            params={"horizon_days": horizon_days, "scored_by": scoring.winner, **scoring.params},
            attachments=plots.values(),
        )
    registry.promote(model_dir, CLV, version.version)
    plot_paths = {k: version.path / "plots" / Path(p).name for k, p in plots.items()}
    return ClvOutcome(scoring, version, plot_paths)
