"""Nightly model operations around ``ml/`` (glue, no dagster import): train a churn
candidate, register it with its plots and card, gate it against the baselines and the
champion, score with the champion, measure drift and backtest earlier scores; score CLV with
the better of BTYD and gradient boosting and register the night's CLV models.

Models are retrained when :func:`retrain_reason` says so (no champion yet, a champion older
than ``retrain_every_days``, or trained for another horizon); on the other nights the
champion only scores. Training uses at most ``max_train_customers`` customers
(:meth:`ml.data.LifecycleData.sample_customers`); scoring always covers everyone. Both bound
the nightly cost at a million customers (see ``benchmarks/bench_scale.py``)."""

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
from ml.clv_scoring import ClvScoring, score_clv, score_with
from ml.data import LifecycleData
from ml.drift import drift_summary, feature_psi
from ml.features import build_features
from ml.gate import GateResult, gate
from ml.plots import churn_plots, clv_decile_plot, importance_plot

CHURN = "churn"
CLV = "clv"
BTYD_INPUTS = ["frequency", "recency", "T", "monetary_value"]


# A registered artefact that cannot be loaded or used by this code version (e.g. saved by
# an older release, or its file damaged): the night retrains instead of failing.
UNUSABLE_MODEL = (AttributeError, ImportError, OSError, EOFError, KeyError, TypeError)


CLV_HORIZON_DAYS = 365  # expected spend and CLV cover the next 12 months


def trains_tonight(
    model_dir: Path,
    cutoff: pd.Timestamp,
    every_days: int,
    churn_horizon_days: int,
    clv_horizon_days: int = CLV_HORIZON_DAYS,
) -> bool:
    """Whether :func:`train_and_score_churn` or :func:`train_and_score_clv` will train as of
    ``cutoff`` (:func:`retrain_reason`), i.e. read the whole order history."""
    horizons = {CHURN: churn_horizon_days, CLV: clv_horizon_days}
    return any(
        retrain_reason(model_dir, kind, cutoff, every_days, horizon) is not None
        for kind, horizon in horizons.items()
    )


def retrain_reason(
    model_dir: Path, kind: str, cutoff: pd.Timestamp, every_days: int, horizon_days: int
) -> str | None:
    """Why ``kind`` must be trained tonight, or None when its champion keeps scoring
    (``every_days`` <= 0: every night)."""
    current = registry.champion(model_dir, kind)
    if current is None:
        return "no champion yet"
    if current.meta.get("params", {}).get("horizon_days") != horizon_days:
        return f"the champion was trained for another horizon than {horizon_days} days"
    trained = pd.Timestamp(current.meta["as_of"]).normalize()
    age = (cutoff.normalize() - trained).days
    if age < 0:
        return f"the champion was trained as of a later date ({trained:%Y-%m-%d})"
    if every_days <= 0 or age >= every_days:
        return f"the champion is {age} day(s) old (retrain every {every_days})"
    return None


@dataclass
class ChurnOutcome:
    candidate: registry.ModelVersion | None  # None on a night without training
    gate: GateResult | None
    champion: registry.ModelVersion | None
    scores: pd.DataFrame  # customer_id, churn_probability (empty when there is no champion)
    drift: pd.DataFrame
    plots: dict[str, Path] = field(default_factory=dict)
    retrained: str | None = None  # why a candidate was trained tonight

    @property
    def promoted(self) -> bool:
        return (
            self.candidate is not None
            and self.champion is not None
            and self.champion.version == self.candidate.version
        )


def _score_churn_with_champion(
    data: LifecycleData, cutoff: pd.Timestamp, model_dir: Path, features: pd.DataFrame
) -> tuple[registry.ModelVersion | None, pd.DataFrame, pd.DataFrame]:
    """(champion, scores, drift of tonight's features against its training features)."""
    champion = registry.champion(model_dir, CHURN)
    if champion is None:
        empty = pd.DataFrame({"customer_id": [], "churn_probability": []})
        return None, empty, pd.DataFrame(columns=["feature", "psi", "status"])
    model = registry.load(model_dir, CHURN)
    scores = model.predict_proba(data, cutoff, features=features)
    reference = getattr(model, "reference_features_", None)
    if reference is None:  # a model saved before reference_features_ existed
        reference = build_features(data, model.cutoffs_[-1], model.horizon_days)
    return champion, scores, feature_psi(reference, features)


def train_and_score_churn(
    data: LifecycleData,
    cutoff: pd.Timestamp,
    model_dir: Path,
    horizon_days: int,
    retrain_every_days: int = 0,
    max_train_customers: int | None = None,
    features: pd.DataFrame | None = None,
) -> ChurnOutcome:
    """Score every customer with the churn champion as of ``cutoff``. When
    :func:`retrain_reason` says so, first fit a candidate on at most ``max_train_customers``
    customers and promote it only if it passes the gate (or if there is no champion yet).
    ``features``: ``build_features(data, cutoff, horizon_days)`` if the caller has it."""
    if features is None:
        features = build_features(data, cutoff, horizon_days)
    reason = retrain_reason(model_dir, CHURN, cutoff, retrain_every_days, horizon_days)
    unusable = False
    if reason is None:
        try:
            champion, scores, drift = _score_churn_with_champion(data, cutoff, model_dir, features)
            return ChurnOutcome(None, None, champion, scores, drift)
        except UNUSABLE_MODEL as exc:
            reason = f"the champion could not score ({type(exc).__name__}: {exc})"
            unusable = True
    train = data.sample_customers(max_train_customers)
    candidate = ChurnModel(horizon_days=horizon_days, n_threads=1).fit(train, cutoff)
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
            data_fingerprint=registry.data_fingerprint(train),
            params={"horizon_days": horizon_days, "n_train_customers": train.n_buyers},
            attachments=plots.values(),
        )
    current = None if unusable else registry.champion(model_dir, CHURN)
    verdict = gate(candidate.metrics_, current.metrics if current else None)
    if verdict.passed or current is None:
        # The very first model (or the successor of one that cannot score any more) is
        # promoted even when it fails: there is nothing else to score with; the gate's
        # failure still shows in the asset check.
        registry.promote(model_dir, CHURN, version.version)
    champion, scores, drift = _score_churn_with_champion(data, cutoff, model_dir, features)
    plot_paths = {k: version.path / "plots" / Path(p).name for k, p in plots.items()}
    return ChurnOutcome(version, verdict, champion, scores, drift, plot_paths, reason)


def run_record(outcome: ChurnOutcome, as_of: dt.date) -> dict:
    """The ``ml.model_runs`` row of a night that trained a churn candidate (metrics plus
    the gate's verdict)."""
    if outcome.candidate is None or outcome.gate is None:
        raise ValueError("no candidate was trained: nothing to record")
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
    retrained: str | None = None  # why the models were trained tonight (None: scored only)


def _score_clv_with_champion(
    data: LifecycleData,
    cutoff: pd.Timestamp,
    model_dir: Path,
    horizon_days: int,
    features: pd.DataFrame | None,
) -> ClvOutcome:
    """Score with the registered CLV models, as the night they were trained chose."""
    version = registry.champion(model_dir, CLV)
    models = registry.load(model_dir, CLV)
    params = dict(version.meta.get("params", {}))
    winner = params.get("scored_by", "btyd")
    gbm = models.get("gbm") if winner == "gbm" else None
    scores = score_with(models["btyd"], gbm, data, cutoff, horizon_days, features)
    comparison = dict(params.get("comparison") or {"horizon_days": 0})
    comparison["reason"] = (
        f"scored by the {winner} of {version.version}, trained as of {version.meta['as_of'][:10]}"
        f" ({comparison.get('reason', 'no comparison recorded')})"
    )
    btyd_params = {k: v for k, v in params.items() if isinstance(v, int | float)}
    btyd_params.pop("horizon_days", None)
    scoring = ClvScoring(scores, winner, comparison, btyd_params, models["btyd"], gbm)
    return ClvOutcome(scoring, version)


def train_and_score_clv(
    data: LifecycleData,
    cutoff: pd.Timestamp,
    model_dir: Path,
    horizon_days: int = CLV_HORIZON_DAYS,
    retrain_every_days: int = 0,
    max_train_customers: int | None = None,
    features: pd.DataFrame | None = None,
) -> ClvOutcome:
    """Score with the better CLV model (:func:`ml.clv_scoring.score_clv`) and register the
    night's models (BTYD, plus the GBM when it scores) with the holdout decile plot and a
    model card; on nights :func:`retrain_reason` does not retrain, the registered models
    score. There is no gate: the holdout comparison picks the scorer when training.
    ``features``: :func:`ml.features.build_features` at ``cutoff`` (any horizon) if the
    caller has it."""
    reason = retrain_reason(model_dir, CLV, cutoff, retrain_every_days, horizon_days)
    if reason is None:
        try:
            return _score_clv_with_champion(data, cutoff, model_dir, horizon_days, features)
        except UNUSABLE_MODEL as exc:
            reason = f"the registered models could not score ({type(exc).__name__}: {exc})"
    scoring = score_clv(data, cutoff, horizon_days, max_train_customers, features)
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
            params={
                "horizon_days": horizon_days,
                "scored_by": scoring.winner,
                "comparison": scoring.comparison,
                **scoring.params,
            },
            attachments=plots.values(),
        )
    registry.promote(model_dir, CLV, version.version)
    plot_paths = {k: version.path / "plots" / Path(p).name for k, p in plots.items()}
    return ClvOutcome(scoring, version, plot_paths, reason)
