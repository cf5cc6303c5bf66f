"""BTYD models: published CDNOW results, agreement with lifetimes, numerical robustness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cdnow import DATA, cdnow_fitted, cdnow_summary
from scipy.integrate import quad

from ml.btyd import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from ml.btyd._rows import Distinct, distinct_rows
from ml.btyd._special import log_power_integral
from ml.clv import customer_lifetime_value, fit_clv, rfm_summary


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return cdnow_summary().copy()


@pytest.fixture(scope="module")
def fitted() -> dict:
    return cdnow_fitted()


def test_summary_matches_lifetimes_precomputed(cdnow):
    ref = pd.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv")
    merged = cdnow.merge(ref.rename(columns={"T": "T_ref"}), left_on="customer_id", right_on="ID")
    assert len(merged) == 2357
    np.testing.assert_array_equal(merged["frequency"], merged["x"])
    np.testing.assert_allclose(merged["recency"], merged["t_x"], atol=0.006)
    np.testing.assert_allclose(merged["T"], merged["T_ref"], atol=0.006)
    np.testing.assert_allclose(merged["monetary_value"], merged["zbar"], atol=0.006)


@pytest.mark.parametrize(
    ("key", "published", "ll"),
    [
        ("bg", {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, -9582.4),
        ("pareto", {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}, -9595.0),
        ("gg", {"p": 6.25, "q": 3.74, "gamma": 15.44}, None),
    ],
)
def test_published_cdnow_estimates(fitted, key, published, ll):
    model = fitted[key]
    for name, value in published.items():  # published values to 3 significant digits
        assert f"{model.params_[name]:.3g}" == f"{value:.3g}", name
    if ll is not None:
        assert model.log_likelihood_ == pytest.approx(ll, abs=0.05)
        assert model.n_customers_ == 2357
    else:
        assert model.n_customers_ == 946


def test_published_bg_conditional_expectation(fitted):
    assert fitted["bg"].predict(39, 2, 30.43, 38.86)[0] == pytest.approx(1.226, abs=5e-4)


@pytest.mark.parametrize(
    ("key", "cls"),
    [("bg", "BetaGeoFitter"), ("mbg", "ModifiedBetaGeoFitter"), ("pareto", "ParetoNBDFitter")],
)
def test_agrees_with_lifetimes(fitted, cdnow, key, cls):
    import lifetimes

    x, tx, T = cdnow["frequency"], cdnow["recency"], cdnow["T"]
    ref = getattr(lifetimes, cls)().fit(x, tx, T)
    ours = fitted[key]
    for name, value in ref.params_.items():
        assert ours.params_[name] == pytest.approx(value, rel=1e-3), name
    expected = ref.conditional_expected_number_of_purchases_up_to_time(52, x, tx, T)
    np.testing.assert_allclose(ours.predict(52, x, tx, T), expected, rtol=1e-3)
    alive = ref.conditional_probability_alive(x, tx, T)
    np.testing.assert_allclose(ours.conditional_probability_alive(x, tx, T), alive, rtol=1e-3)


def test_gamma_gamma_and_clv_agree_with_lifetimes(fitted, cdnow):
    import lifetimes
    from lifetimes.utils import _customer_lifetime_value

    x, m = cdnow["frequency"], cdnow["monetary_value"]
    repeat = (x > 0) & (m > 0)
    ref = lifetimes.GammaGammaFitter().fit(x[repeat], m[repeat])
    for name, value in zip(("p", "q", "gamma"), ref.params_.to_numpy(), strict=True):
        assert fitted["gg"].params_[name] == pytest.approx(value, rel=1e-3)
    spend = fitted["gg"].conditional_expected_average_profit(x, m)
    np.testing.assert_allclose(spend, ref.conditional_expected_average_profit(x, m), rtol=1e-3)
    bg = fitted["bg"]
    ours = customer_lifetime_value(bg, x, cdnow["recency"], cdnow["T"], spend, 12, 0.01, "W")
    theirs = _customer_lifetime_value(bg, x, cdnow["recency"], cdnow["T"], spend, 12, 0.01, "W")
    np.testing.assert_allclose(ours, theirs.to_numpy(), rtol=1e-10)


def test_power_integral_matches_quadrature():
    cases = [  # A, B, p, q, lo, hi  (z close to 1, large p, both orderings of A and B)
        (10.6, 11.7, 2.55, 1.6, 3.0, 38.9),
        (500.0, 0.01, 0.3, 1.1, 0.0, 40.0),
        (0.5, 80.0, 5000.3, 1.6, 100.0, 1e5),
        (4.0, 4.0, 1.2, 0.7, 1.0, 2.0),
        (1e4, 1e-3, 1.5, 1.05, 0.0, 1e3),
    ]
    for a_, b_, p, q, lo, hi in cases:
        ref_log_scale = -p * np.log(a_ + lo) - q * np.log(b_ + lo)

        def f(tau, a_=a_, b_=b_, p=p, q=q, c=ref_log_scale):
            return np.exp(-p * np.log(a_ + tau) - q * np.log(b_ + tau) - c)

        val, _ = quad(f, lo, hi, points=[lo + 1e-3, lo + 1, lo + 10], limit=500, epsrel=1e-12)
        got = log_power_integral(a_, b_, p, q, lo, hi) - ref_log_scale
        assert got == pytest.approx(np.log(val), abs=1e-8)


def test_probability_of_zero_purchases(fitted, cdnow):
    x, tx, T = cdnow["frequency"], cdnow["recency"], cdnow["T"]
    for key in ("bg", "mbg", "pareto"):
        m = fitted[key]
        p0 = m.probability_of_zero_purchases(26, x, tx, T)
        assert np.all((p0 > 0) & (p0 < 1))
        assert np.all(1 - p0 <= m.predict(26, x, tx, T) + 1e-12)  # P(N >= 1) <= E[N]
        assert np.all(m.probability_of_zero_purchases(52, x, tx, T) <= p0 + 1e-12)
        np.testing.assert_allclose(m.probability_of_zero_purchases(0.0, x, tx, T), 1.0)
    # Pareto/NBD: the closed form vs direct integration over the posterior given alive
    r, alpha, s, beta = fitted["pareto"].params_.values()
    xi, ti, Ti, t = 3.0, 20.0, 38.0, 26.0

    def dens(u):
        return (
            (r + xi)
            / (alpha + Ti)
            * ((alpha + Ti) / (alpha + Ti + u)) ** (r + xi + 1)
            * ((beta + Ti) / (beta + Ti + u)) ** s
        )

    buy = quad(dens, 0, t)[0]
    alive = fitted["pareto"].conditional_probability_alive(xi, ti, Ti)[0]
    assert fitted["pareto"].probability_of_zero_purchases(t, xi, ti, Ti)[0] == pytest.approx(
        1 - alive * buy, rel=1e-9
    )


def test_extreme_inputs_are_finite(fitted):
    x = np.array([5000.0, 0.0, 1.0, 3000.0, 10.0])
    tx = np.array([99990.0, 0.0, 1e-9, 10.0, 1e5])
    T = np.array([1e5, 1e5, 1e-9, 1e5, 1e5])
    for key in ("bg", "mbg", "pareto"):
        m = fitted[key]
        ll, _ = m._loglik(np.array(list(m.params_.values())), x, tx, T)
        for values in (
            ll,
            m.predict(52, x, tx, T),
            m.conditional_probability_alive(x, tx, T),
            m.probability_of_zero_purchases(52, x, tx, T),
        ):
            assert np.all(np.isfinite(values)), key
    spend = fitted["gg"].conditional_expected_average_profit([0, 3, 5000, 2], [0, 0, 1e-9, 1e6])
    assert np.all(np.isfinite(spend)) and np.all(spend >= 0)
    gg = fitted["gg"].params_
    assert spend[0] == pytest.approx(gg["p"] * gg["gamma"] / (gg["q"] - 1))


@pytest.mark.filterwarnings("ignore::UserWarning")  # no drop-out in these data: boundary MLE
@pytest.mark.parametrize("cls", [BetaGeoFitter, ModifiedBetaGeoFitter])
def test_expected_purchases_with_homogeneous_dropout(cls):
    """A fit on the boundary (a, b in the millions: no dropout heterogeneity, seen on small
    real histories) made 2F1 overflow to -inf; the point-mass form takes over smoothly."""
    x, tx, T = np.array([0, 1, 3, 10, 29.0]), np.array([0, 20, 100, 300, 449.0]), np.full(5, 460.0)
    x[0], tx[0] = 0, 0

    def expected(a_plus_b: float) -> np.ndarray:
        model = cls()
        model.params_ = {"r": 0.95, "alpha": 30.6, "a": 0.1 * a_plus_b, "b": 0.9 * a_plus_b}
        return model.predict(90, x, tx, T)

    huge = expected(1e7)
    assert np.isfinite(huge).all() and (huge > 0).all()
    # continuous across the switch, and converging as a + b grows
    below, above = expected(0.99e4), expected(1.01e4)
    np.testing.assert_allclose(below, above, rtol=1e-4)
    np.testing.assert_allclose(expected(1e5), huge, rtol=1e-3)
    # far from the switch the exact formula and the point mass differ by O(1/(a+b))
    assert np.max(np.abs(expected(1e2) / huge - 1)) > 1e-3


def test_synthetic_large_frequency_fit():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4000, 300).astype(float)
    T = rng.uniform(1e3, 1e5, 300)
    tx = np.where(x > 0, T * rng.uniform(0.5, 1, 300), 0.0)
    for cls in (BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter):
        m = cls().fit(x, tx, T)
        assert np.isfinite(m.log_likelihood_) and all(np.isfinite(list(m.params_.values())))


def test_mbg_one_time_buyers_can_be_dead(fitted):
    p = fitted["mbg"].conditional_probability_alive([0, 0], [0, 0], [1.0, 38.0])
    assert np.all(p < 1) and p[1] < p[0]
    assert fitted["bg"].conditional_probability_alive([0], [0], [38.0])[0] == 1.0


def test_weights_equal_expanded_rows(cdnow):
    x, tx, T = (cdnow[c].to_numpy() for c in ("frequency", "recency", "T"))
    w = np.arange(len(x)) % 3 + 1.0
    weighted = BetaGeoFitter().fit(x, tx, T, weights=w, aggregate=False)
    expanded = BetaGeoFitter().fit(*(np.repeat(v, w.astype(int)) for v in (x, tx, T)))
    assert weighted.n_customers_ == expanded.n_customers_ == int(w.sum())
    for name, value in expanded.params_.items():
        assert weighted.params_[name] == pytest.approx(value, rel=1e-5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([-1, 2], [0, 1], [3, 4]), "frequency contains negative"),
        (([1, 2], [5, 1], [3, 4]), "recency > T"),
        (([1, np.nan], [1, 1], [3, 4]), "frequency contains NaN"),
        (([1, 2], [1, 1], [3]), "same length"),
        (([0, 2], [1, 1], [3, 4]), "recency must be 0"),
        (([1.5, 2], [1, 1], [3, 4]), "whole number"),
    ],
)
def test_invalid_input_raises(fitted, args, message):
    with pytest.raises(ValueError, match=message):
        BetaGeoFitter().fit(*args)
    with pytest.raises(ValueError, match=message):
        fitted["pareto"].predict(10, *args)
    with pytest.raises(ValueError, match="monetary_value contains negative"):
        GammaGammaFitter().fit([1, 2, 3], [10.0, -1.0, 3.0])
    with pytest.raises(ValueError, match="not fitted"):
        ParetoNBDFitter().conditional_probability_alive([1], [1], [2])


def test_predict_interval_brackets_point_estimate(fitted, cdnow):
    x, tx, T = (cdnow[c].to_numpy()[:200] for c in ("frequency", "recency", "T"))
    for key in ("bg", "pareto"):
        m = fitted[key]
        lower, upper = m.predict_interval(39, x, tx, T, alpha=0.1, n_draws=100)
        point = m.predict(39, x, tx, T)
        assert np.all(lower <= point + 1e-9) and np.all(point <= upper + 1e-9)
        assert np.mean(upper - lower) > 0


def test_clv_pipeline_in_days():
    summary = cdnow_summary(unit_days=1.0).copy()
    assert summary["T"].max() <= 272 and (summary["recency"] <= summary["T"]).all()
    model = fit_clv(summary)
    # same model as in weeks: alpha scales with the time unit, the shape parameters do not
    assert model.transaction_model.params_["r"] == pytest.approx(0.243, rel=2e-3)
    assert model.transaction_model.params_["alpha"] / 7 == pytest.approx(4.414, rel=2e-3)
    scores = model.score(summary.head(300), horizon_days=365, n_draws=50)
    assert list(scores.columns) == [
        "customer_id", "p_alive", "expected_orders_12m", "expected_spend_12m",
        "clv", "clv_lower", "clv_upper", "expected_orders_lower", "expected_orders_upper",
    ]  # fmt: skip
    assert scores.notna().all().all()
    assert (scores["clv_lower"] <= scores["clv"] + 1e-9).all()
    assert (scores["clv"] <= scores["clv_upper"] + 1e-9).all()
    assert (scores["clv"] <= scores["expected_spend_12m"] + 1e-9).all()  # discounting


def test_score_without_clv_interval_changes_nothing_else():
    summary = cdnow_summary(unit_days=1.0).head(400).copy()
    model = fit_clv(summary)
    full = model.score(summary, horizon_days=365, n_draws=30)
    cheap = model.score(summary, horizon_days=365, n_draws=30, clv_interval=False)
    assert cheap[["clv_lower", "clv_upper"]].isna().all().all()
    assert full[["clv_lower", "clv_upper"]].notna().all().all()
    others = full.columns.drop(["clv_lower", "clv_upper"])
    pd.testing.assert_frame_equal(cheap[others], full[others])


def test_delta_method_intervals_match_parameter_draws():
    """Large populations get delta-method intervals (9 evaluations instead of one per draw):
    on CDNOW their widths match 500-draw quantile intervals."""
    summary = cdnow_summary(unit_days=1.0).copy()
    model = fit_clv(summary)
    draws = model.score(summary, horizon_days=365, n_draws=500, method="draws")
    delta = model.score(summary, horizon_days=365, method="delta")
    pd.testing.assert_series_equal(draws["clv"], delta["clv"])
    for point, lo, hi in [
        ("clv", "clv_lower", "clv_upper"),
        ("expected_orders_12m", "expected_orders_lower", "expected_orders_upper"),
    ]:
        assert (delta[lo] <= delta[point] + 1e-9).all() and (delta[point] <= delta[hi] + 1e-9).all()
        assert (delta[lo] >= 0).all()
        wide = (draws[hi] - draws[lo]) > 1e-6
        ratio = ((delta[hi] - delta[lo]) / (draws[hi] - draws[lo]))[wide]
        assert 0.9 < ratio.median() < 1.1, (point, ratio.describe())
    with pytest.raises(ValueError, match="method"):
        model.score(summary.head(5), method="bootstrap")


def test_rfm_summary_uses_only_data_up_to_cutoff():
    orders = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b"],
            "order_ts": pd.to_datetime(
                [
                    "2024-01-01 10:00",
                    "2024-01-01 18:00",
                    "2024-01-11 00:00",
                    "2024-03-01 09:00",
                    "2024-01-21 12:00",
                ]
            ),
            "amount": [10.0, 5.0, 30.0, 999.0, 7.0],
        }
    )
    out = rfm_summary(orders, "2024-01-31").set_index("customer_id")
    assert out.loc["a"].tolist() == [1.0, 10.0, 30.0, 30.0]
    assert out.loc["b"].tolist() == [0.0, 0.0, 10.0, 0.0]


def test_distinct_rows_match_numpy_unique():
    # integer-coded rows (the fast path) and float rows give np.unique's rows and inverse
    rng = np.random.default_rng(3)
    tx = rng.integers(0, 400, 5000).astype(float)
    for x in (rng.integers(0, 30, 5000).astype(float), rng.random(5000).round(2)):
        cols = (x, tx, tx + rng.integers(0, 50, 5000))
        rows, inverse = distinct_rows(*cols)
        expected, expected_inverse = np.unique(np.column_stack(cols), axis=0, return_inverse=True)
        np.testing.assert_array_equal(rows, expected)
        np.testing.assert_array_equal(inverse, expected_inverse.ravel())
        np.testing.assert_array_equal(rows[inverse], np.column_stack(cols))


def test_distinct_matches_numpy_unique():
    # whole numbers take the dense path; fractions, NaN and -0.0 fall back to np.unique
    rng = np.random.default_rng(4)
    days = rng.integers(0, 400, 3000).astype(float)
    columns = (days, days + 0.5, np.append(days, np.nan), np.append(days, -0.0), days[:0])
    for column in columns:
        d = Distinct(column)
        values, index = np.unique(column, return_inverse=True)
        np.testing.assert_array_equal(d.values, values)
        np.testing.assert_array_equal(d.index, index)
        np.testing.assert_array_equal(np.signbit(d.values), np.signbit(values))


def test_rfm_summary_matches_two_key_grouping():
    # unsorted orders of string ids, several a day, some after the cutoff and without a customer
    rng = np.random.default_rng(5)
    n = 4000
    ids = np.array([f"c{i}" for i in rng.integers(0, 600, n)], dtype=object)
    ids[::97] = None
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300 * 24, n), unit="h")
    orders = pd.DataFrame({"customer_id": ids, "order_ts": ts, "amount": rng.gamma(2, 30, n)})
    cutoff = pd.Timestamp("2024-09-01")
    data = orders.assign(day=orders["order_ts"].dt.normalize())
    data = data[data["day"] <= cutoff]
    daily = data.groupby(["customer_id", "day"])["amount"].sum().reset_index()
    first = daily.groupby("customer_id")["day"].transform("min")
    repeat = daily[daily["day"] > first].groupby("customer_id")["amount"]
    g = daily.groupby("customer_id")["day"]
    expected = pd.DataFrame(
        {
            "frequency": (g.size() - 1).astype(float),
            "recency": (g.max() - g.min()).dt.days.astype(float),
            "T": (cutoff - g.min()).dt.days.astype(float),
        }
    )
    expected["monetary_value"] = (repeat.sum() / repeat.size()).reindex(expected.index)
    expected = expected.fillna(0.0).reset_index()
    pd.testing.assert_frame_equal(rfm_summary(orders, cutoff), expected)


def test_predict_cumulative_equals_predict(fitted, cdnow):
    # the horizons share P(alive): same values as one predict per horizon
    x, tx, T = (cdnow[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    for name in ("bg", "mbg", "pareto"):
        model = fitted[name]
        many = model.predict_cumulative([1.0, 13.0, 52.0], x, tx, T)
        for row, t in zip(many, (1.0, 13.0, 52.0), strict=True):
            np.testing.assert_allclose(row, model.predict(t, x, tx, T), rtol=1e-12)
