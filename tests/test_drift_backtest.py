"""Feature drift (ml.drift) and backtest of stored churn scores (ml.backtest)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from ml.backtest import backtest_scores, day_cutoff, matured_dates
from ml.data import LifecycleData
from ml.drift import drift_summary, feature_psi, psi
from ml.metrics import expected_calibration_error, lift_at


# -- PSI ------------------------------------------------------------------------------------
def test_psi_near_zero_for_same_distribution_and_large_when_shifted():
    rng = np.random.default_rng(0)
    ref, same = rng.gamma(2.0, 30.0, 20_000), rng.gamma(2.0, 30.0, 20_000)
    assert psi(ref, ref) == pytest.approx(0.0, abs=1e-12)
    assert psi(ref, same) < 0.01
    assert psi(ref, ref * 1.5) > 0.25
    assert psi(ref, ref + 100.0) > 5  # everything lands in the open top bin
    # Missing values are a bin of their own.
    holes = same.copy()
    holes[:6000] = np.nan
    assert psi(ref, holes) > 0.25
    assert psi(np.r_[ref, [np.nan] * 100], np.r_[same, [np.nan] * 100]) < 0.01


def test_psi_categorical_matches_definition():
    ref = np.r_[np.ones(200), np.zeros(800)]  # one-hot column: 20 % ones
    cur = np.r_[np.ones(500), np.zeros(500)]  # 50 % ones
    expected = (0.5 - 0.2) * np.log(0.5 / 0.2) + (0.5 - 0.8) * np.log(0.5 / 0.8)
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-3)  # eps only on the empty bins
    channels = pd.Series(["web", "app"] * 500)
    assert psi(channels, channels.sample(frac=1.0, random_state=1)) == pytest.approx(0.0)
    unseen = pd.Series(["web"] * 500 + ["tv"] * 500)
    assert psi(channels, unseen) > 1.0  # half of the rows in a category never seen before
    assert np.isnan(psi([], [1.0]))
    # levels match by value whatever the dtypes: ints against floats, floats against floats
    as_int = pd.Series(ref.astype(int))
    assert psi(as_int, pd.Series(cur)) == pytest.approx(psi(ref, cur))
    assert psi(ref, np.r_[cur, 2.0]) > psi(ref, cur)  # an unseen level


def test_feature_psi_table():
    rng = np.random.default_rng(1)
    n = 5000
    ref = pd.DataFrame(
        {
            "stable": rng.normal(size=n),
            "moved": rng.normal(size=n),
            "acq_social": (rng.random(n) < 0.3).astype(float),
            "only_ref": rng.normal(size=n),
        }
    )
    cur = pd.DataFrame(
        {
            "stable": rng.normal(size=n),
            "moved": rng.normal(1.0, 1.0, size=n),
            "acq_social": (rng.random(n) < 0.5).astype(float),
        }
    )
    table = feature_psi(ref, cur)
    by = table.set_index("feature")
    assert list(table.columns)[:3] == ["feature", "psi", "status"]
    assert by.loc["stable", "status"] == "ok" and by.loc["stable", "psi"] < 0.02
    assert by.loc["moved", "status"] == "alert"
    assert (
        by.loc["acq_social", "status"] == "warn" and by.loc["acq_social", "kind"] == "categorical"
    )
    assert by.loc["only_ref", "status"] == "missing" and np.isnan(by.loc["only_ref", "psi"])
    assert by.loc["moved", "n_bins"] == 11  # 10 quantile bins + the NaN bin
    summary = drift_summary(table)
    assert summary["n_alert"] == 1 and summary["n_warn"] == 1 and summary["n_missing"] == 1
    assert summary["max_psi_feature"] == "moved"


# -- backtest -------------------------------------------------------------------------------
def _orders(rows):
    frame = pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "status"])
    return frame.assign(order_total=25.0, ordered_at=pd.to_datetime(frame["ordered_at"]))


@pytest.fixture(scope="module")
def known_world():
    """20 customers order on 2024-01-01; the odd ones order again 2024-02-15 (not churned
    within 90 days of 2024-01-10), c18 only with an order cancelled later (still churned);
    an order on 2024-12-31 ends the data."""
    rows = [(f"o{i}", f"c{i:02d}", "2024-01-01 10:00", "delivered") for i in range(20)]
    rows += [(f"r{i}", f"c{i:02d}", "2024-02-15 12:00", "delivered") for i in range(1, 20, 2)]
    rows += [
        ("x18", "c18", "2024-02-20 09:00", "cancelled"),
        ("z", "c99", "2024-12-31 00:00", "placed"),
    ]
    data = LifecycleData(orders=_orders(rows))
    y = pd.Series([1 - i % 2 for i in range(20)], index=[f"c{i:02d}" for i in range(20)])
    return data, y


def test_backtest_metrics_on_known_labels(known_world):
    data, y = known_world
    rng = np.random.default_rng(0)
    p_a = np.clip(0.6 * y.to_numpy() + rng.uniform(0, 0.5, 20), 0, 1)
    p_b = rng.uniform(0, 1, 20)
    day = dt.date(2024, 1, 10)
    frames = [
        pd.DataFrame({"customer_id": y.index, "churn_probability": p, "model_version": v})
        for v, p in (("vA", p_a), ("vB", p_b))
    ]
    scores = pd.concat(frames).assign(as_of_date=day)
    unknown = {"customer_id": "c99", "churn_probability": 0.5, "model_version": "vA"}
    not_matured = scores.assign(as_of_date=dt.date(2024, 11, 1))
    scores = pd.concat([scores, pd.DataFrame([{**unknown, "as_of_date": day}]), not_matured])
    out = backtest_scores(scores, data, horizon_days=90)
    assert list(out["model_version"]) == ["vA", "vB"] and set(out["as_of_date"]) == {day}
    for (_, row), p in zip(out.iterrows(), (p_a, p_b), strict=True):
        assert row["n"] == 20 and row["churn_rate"] == 0.5
        assert row["label_end"] == dt.date(2024, 4, 9)
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y, p))
        assert row["pr_auc"] == pytest.approx(average_precision_score(y, p))
        assert row["brier"] == pytest.approx(brier_score_loss(y, p))
        assert row["ece"] == pytest.approx(expected_calibration_error(y, p))
        assert row["lift_top_decile"] == pytest.approx(lift_at(y, p))
        assert row["mean_probability"] == pytest.approx(p.mean())
    assert out.loc[0, "n_unlabelled"] == 1 and out.loc[1, "n_unlabelled"] == 0
    assert out.loc[0, "roc_auc"] > 0.9  # the informative model is told apart from noise


def test_backtest_maturity(known_world):
    data, _ = known_world
    assert day_cutoff("2024-01-10") == pd.Timestamp("2024-01-10 23:59:59.999999")
    dates = ["2024-09-01", "2024-10-02", "2024-10-03"]
    assert matured_dates(dates, 90, "2024-12-31 23:59:59.999999") == [
        dt.date(2024, 9, 1),
        dt.date(2024, 10, 2),
    ]
    scores = pd.DataFrame(
        {
            "customer_id": ["c01"],
            "as_of_date": [dt.date(2024, 10, 3)],
            "churn_probability": [0.3],
            "model_version": ["v"],
        }
    )
    empty = backtest_scores(scores, data, horizon_days=90)
    assert empty.empty and "roc_auc" in empty.columns
    assert len(backtest_scores(scores, data, horizon_days=60)) == 1
    # An explicit data end earlier than the data holds also blocks maturity.
    assert backtest_scores(scores, data, horizon_days=60, data_end="2024-11-30").empty
    with pytest.raises(ValueError, match="missing columns"):
        backtest_scores(scores.drop(columns="model_version"), data)
