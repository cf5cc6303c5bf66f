"""Evaluation plots (ml.plots): real PNG files of the expected size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from ml import plots
from ml.metrics import feature_importances

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def churn_eval():
    rng = np.random.default_rng(0)
    n = 1500
    X = pd.DataFrame(
        {
            "recency_days": rng.exponential(60, n),
            "frequency": rng.poisson(3, n).astype(float),
            "noise": rng.normal(size=n),
        }
    )
    logit = 0.03 * X["recency_days"] - 0.5 * X["frequency"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).to_numpy().astype(int)
    return X, y


def _assert_png(path, out_dir):
    assert path.parent == out_dir and path.stat().st_size > 2000
    assert path.read_bytes()[:8] == PNG_MAGIC
    height, width = imread(path).shape[:2]
    assert (width, height) == (600, 400)


def test_churn_plots(tmp_path, churn_eval):
    X, y = churn_eval
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X.to_numpy(), y)
    prob = model.predict_proba(X.to_numpy())[:, 1]
    out = tmp_path / "plots"
    paths = plots.churn_plots(y, prob, {"recency": X["recency_days"].to_numpy()}, out)
    assert set(paths) == {"roc", "gains", "calibration"}
    for path in paths.values():
        _assert_png(path, out)
    # A different input gives a different picture (the curves are actually drawn).
    other = plots.roc_plot(y, np.random.default_rng(1).random(len(y)), out, "roc_random.png")
    assert other.read_bytes() != paths["roc"].read_bytes()


def test_feature_importances(tmp_path, churn_eval):
    X, y = churn_eval
    hgb = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X.to_numpy(), y)
    perm = feature_importances(hgb, X, y, scoring="roc_auc", max_rows=800)
    assert perm.index[0] == "recency_days" and perm["recency_days"] > perm["noise"]
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X.to_numpy(), y)
    native = feature_importances(forest, X, y)
    assert native.sum() == pytest.approx(1.0) and native.index[0] == "recency_days"
    _assert_png(plots.importance_plot(perm, tmp_path), tmp_path)


def test_clv_decile_plot(tmp_path):
    rng = np.random.default_rng(2)
    expected = rng.gamma(0.7, 80.0, 1000)
    actual = rng.poisson(expected / 40.0) * 40.0
    path = plots.clv_decile_plot(actual, {"btyd": expected, "gbm": expected * 1.2}, tmp_path)
    _assert_png(path, tmp_path)
    assert path.name == "clv_deciles.png"
