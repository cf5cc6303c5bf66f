"""BTYD fitting internals: exact row compression, the weighted objective on extreme rows, the
warm start on large data (the published CDNOW results are in test_btyd.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cdnow import cdnow_fitted, cdnow_summary

from ml.btyd import BetaGeoFitter, GammaGammaFitter
from ml.btyd._optim import WARM_ROWS, lbfgsb
from ml.btyd._rows import compress_rows
from ml.btyd.simulate import CDNOW_DAYS, simulate_bgnbd


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return cdnow_summary().copy()


@pytest.fixture(scope="module")
def fitted() -> dict:
    return cdnow_fitted()


EXTREME = (  # frequencies in the thousands, one-time buyers, recency == T, tiny ages, duplicates
    np.array([5000.0, 0.0, 1.0, 3000.0, 10.0, 0.0, 1.0, 5000.0, 2.0, 2.0]),
    np.array([99990.0, 0.0, 1e-9, 10.0, 1e5, 0.0, 1e-9, 99990.0, 3.0, 3.0]),
    np.array([1e5, 1e5, 1e-9, 1e5, 1e5, 1e-9, 1e-9, 1e5, 3.0, 40.0]),
)


@pytest.mark.parametrize("key", ["bg", "mbg", "pareto", "gg"])
def test_compressed_fit_equals_uncompressed(fitted, cdnow, key):
    model = fitted[key]
    if key == "gg":
        cols = (cdnow["frequency"], cdnow["monetary_value"])
    else:
        cols = (cdnow["frequency"], cdnow["recency"], cdnow["T"])
    plain = type(model)().fit(*cols, aggregate=False)
    assert model.n_unique_rows_ < plain.n_unique_rows_ == plain.n_customers_
    assert model.n_customers_ == plain.n_customers_
    assert model.log_likelihood_ == pytest.approx(plain.log_likelihood_, rel=1e-9)
    for name, value in plain.params_.items():
        assert model.params_[name] == pytest.approx(value, rel=1e-6), name


@pytest.mark.parametrize("key", ["bg", "mbg", "pareto", "gg"])
def test_weighted_objective_equals_row_sum_on_extreme_rows(fitted, key):
    model = fitted[key]
    params = np.array(list(model.params_.values()))
    cols = EXTREME if key != "gg" else (EXTREME[0][EXTREME[0] > 0], EXTREME[1][EXTREME[0] > 0])
    if key == "gg":
        cols = (cols[0], np.array([1e-9, 1e6, 0.01, 25.0, 3.5, 1e-9, 7.0, 7.0]))
    rows, w = compress_rows(list(cols))
    assert w.sum() == cols[0].size and w.size < cols[0].size
    value, grad = model._weighted_loglik(params, model._prepare(rows, w), w)
    ll, per_row_grad = model._loglik(params, *cols, grad=True)
    assert np.isfinite(value) and np.all(np.isfinite(ll))
    assert value == pytest.approx(ll.sum(), rel=1e-12)
    if per_row_grad is not None:
        np.testing.assert_allclose(grad, per_row_grad.sum(axis=0), rtol=1e-9)
        for j in range(params.size):  # against central differences of the weighted total
            step = np.zeros(params.size)
            step[j] = 1e-6 * params[j]
            up = model._weighted_loglik(params + step, model._prepare(rows, w), w)[0]
            down = model._weighted_loglik(params - step, model._prepare(rows, w), w)[0]
            assert grad[j] == pytest.approx((up - down) / (2 * step[j]), rel=1e-4, abs=1e-4)


def test_compress_rows_is_exact():
    rng = np.random.default_rng(0)
    n = 20_000
    days = rng.integers(0, 50, n).astype(float)  # dense integer path
    weeks = np.round(rng.integers(0, 300, n) / 7.0, 6)  # non-integer values: hashing path
    weights = rng.integers(0, 3, n).astype(float)  # zero weights drop rows
    wide = [rng.integers(0, 1 << 16, n).astype(float) + 0.5 for _ in range(4)]  # key > 2**62
    for cols, w in (([days, weeks], weights), ([days, weeks, days], None), (wide, weights)):
        rows, got_w = compress_rows(cols, w)
        frame = pd.DataFrame({f"c{i}": c for i, c in enumerate(cols)})
        frame["w"] = 1.0 if w is None else w
        expected = frame.groupby(list(frame.columns[:-1]))["w"].sum()
        expected = expected[expected > 0]
        got = pd.Series(got_w, index=pd.MultiIndex.from_arrays([r.full for r in rows]))
        assert got.index.is_unique and len(got) == len(expected)
        pd.testing.assert_series_equal(
            got.sort_index(), expected.sort_index(), check_names=False, check_index_type=False
        )


def test_warm_start_on_large_data_matches_plain_lbfgsb():
    data = simulate_bgnbd(200_000, seed=1)
    cols = (data["frequency"], data["recency"], data["T"])
    model = BetaGeoFitter().fit(*cols)
    assert model.n_unique_rows_ > WARM_ROWS and model.converged_
    rows, w = compress_rows([c.to_numpy() for c in cols])
    theta0 = model._theta0(*(c.to_numpy() for c in cols))
    plain = lbfgsb(model._objective, theta0, (model._prepare(rows, w), w, w.sum()))
    for name, value in zip(model.params_, np.exp(plain.x), strict=True):
        assert model.params_[name] == pytest.approx(value, rel=1e-6), name
        assert model.params_[name] == pytest.approx(CDNOW_DAYS[name], rel=0.1), name
    assert model.log_likelihood_ == pytest.approx(-plain.fun * w.sum(), rel=1e-10)


def test_gamma_gamma_drops_zero_spend_and_one_time_buyers(fitted, cdnow):
    x = np.concatenate([cdnow["frequency"].to_numpy(), [3.0, 0.0, 4000.0, 0.0]])
    m = np.concatenate([cdnow["monetary_value"].to_numpy(), [0.0, 0.0, 0.0, 12.0]])
    model = GammaGammaFitter().fit(x, m)
    assert model.n_customers_ == fitted["gg"].n_customers_ == 946
    for name, value in fitted["gg"].params_.items():
        assert model.params_[name] == pytest.approx(value, rel=1e-9), name
