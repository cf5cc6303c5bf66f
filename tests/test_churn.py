"""Churn model (ml.churn) and evaluation metrics (ml.metrics)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from test_features import day, simulate_lifecycle

from ml.churn import ChurnModel
from ml.data import LifecycleData
from ml.metrics import (
    brier_score,
    expected_calibration_error,
    lift_at,
    pr_auc,
    roc_auc,
    score_report,
)


# -- metrics ------------------------------------------------------------------------------
def test_metrics_reference_values():
    # Example of the scikit-learn documentation (roc_auc_score, average_precision_score).
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(y, s) == pytest.approx(0.75)
    assert pr_auc(y, s) == pytest.approx(0.8333333333)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500) * 0.6 + 0.4 * y, 1)  # coarse scores: many ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert pr_auc(y, s) == pytest.approx(average_precision_score(y, s))
    assert brier_score(y, s) == pytest.approx(brier_score_loss(y, s))
    assert np.isnan(roc_auc(np.ones(5), np.arange(5)))


def test_ece_near_zero_when_calibrated_and_large_when_not():
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(200_000) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, p, strategy="quantile") < 0.01
    assert expected_calibration_error(y, p**3) > 0.15  # systematically too low
    y_half = (rng.random(10_000) < 0.5).astype(int)
    assert expected_calibration_error(y_half, np.full(10_000, 0.8)) == pytest.approx(0.3, abs=0.02)


def test_lift_top_decile():
    y = np.array([1] * 5 + [0] * 15 + [1] * 5 + [0] * 75)  # 10 % positives overall
    score = -np.arange(100.0)  # first rows score highest
    assert lift_at(y, score, 0.1) == pytest.approx(0.5 / 0.1)
    assert lift_at(y, -score, 0.1) == pytest.approx(0.0)
    rep = score_report(y, score, "m_")
    assert set(rep) == {"m_roc_auc", "m_pr_auc", "m_lift_top_decile", "m_brier", "m_ece"}


# -- model --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    data, as_of = simulate_lifecycle(n_customers=1500, n_days=500, seed=0)
    return data, as_of, ChurnModel(random_state=0, n_threads=1).fit(data, as_of)


def test_model_beats_recency_baseline(fitted):
    _, _, model = fitted
    m = model.metrics_
    assert m["n_eval"] > 1000 and 0.2 < m["churn_rate_eval"] < 0.9
    assert m["roc_auc"] > 0.75
    assert m["roc_auc"] > m["baseline_recency_roc_auc"] + 0.01
    assert m["pr_auc"] > m["baseline_recency_pr_auc"]
    assert m["ece"] < 0.08 and m["brier"] < 0.2
    assert m["lift_top_decile"] > 1.0


def test_cutoffs_and_point_in_time_fit(fitted):
    data, as_of, model = fitted
    assert model.eval_cutoff_ == as_of - pd.Timedelta(days=90)
    assert model.cutoffs_ == [as_of - pd.Timedelta(days=90 + 30 * k) for k in (3, 2, 1, 0)]
    assert "recency_days" in model.feature_names_
    # Rows known only after as_of change neither the fit nor the scores.
    o = data.orders
    future = o.assign(
        order_id="F" + o["order_id"], ordered_at=as_of + pd.Timedelta(days=1), status="placed"
    )
    future["updated_at"] = future["ordered_at"]
    shifted = LifecycleData(
        pd.concat([o, future]), data.reviews, data.surveys, data.checkouts, data.customers
    )
    other = ChurnModel(random_state=0, n_threads=1).fit(shifted, as_of)
    assert other.metrics_ == model.metrics_
    pd.testing.assert_frame_equal(
        other.predict_proba(shifted, as_of), model.predict_proba(data, as_of)
    )


def test_predict_proba_scores_every_customer_with_orders(fitted):
    data, as_of, model = fitted
    scores = model.predict_proba(data, as_of)
    snap = data.as_of(as_of).orders
    buyers = set(snap.loc[snap["status"] != "cancelled", "customer_id"])
    assert list(scores.columns) == ["customer_id", "churn_probability"]
    assert scores["churn_probability"].between(0, 1).all()
    assert set(scores["customer_id"]) <= buyers and len(scores) >= 0.95 * len(buyers)
    recent = model.predict_proba(data, day(200))
    assert len(recent) < len(scores)


def test_btyd_baseline_reported_when_available(fitted):
    if not hasattr(pytest.importorskip("ml.btyd"), "BetaGeoFitter"):
        pytest.skip("ml.btyd.BetaGeoFitter is not available yet")
    _, _, model = fitted
    assert 0.5 < model.metrics_["baseline_btyd_roc_auc"] < model.metrics_["roc_auc"]
    assert "btyd_p_no_purchase" in model.feature_names_


def test_not_enough_history_raises():
    data, _ = simulate_lifecycle(n_customers=50, n_days=60, seed=3)
    with pytest.raises(ValueError, match="history"):
        ChurnModel().fit(data, day(60))


def test_feature_importances_on_held_out_rows(fitted):
    _, _, model = fitted
    imp = model.feature_importances_
    assert list(imp.sort_index().index) == sorted(model.feature_names_)
    assert imp.is_monotonic_decreasing and np.isfinite(imp).all()
    assert imp.iloc[0] > 0.005  # shuffling the most useful feature costs ROC AUC


def test_scoring_many_customers_uses_every_core():
    from threadpoolctl import threadpool_info

    from ml._threads import PARALLEL_PREDICT_ROWS, limit_predict_threads

    def openmp_threads() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"}

    before = openmp_threads()
    if not before:
        pytest.skip("no OpenMP runtime loaded")
    with limit_predict_threads(1, PARALLEL_PREDICT_ROWS - 1):
        assert openmp_threads() == {1}
    with limit_predict_threads(1, PARALLEL_PREDICT_ROWS):
        assert openmp_threads() == before
