"""CLV champion/challenger (ml.clv_challenger)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from test_features import day, simulate_lifecycle

from ml.clv import fit_clv, summary_from_orders
from ml.clv_challenger import (
    MONETARY,
    GbmClvModel,
    _winner,
    clv_metrics,
    compare_clv_models,
    decile_table,
    feasible_horizon,
    future_orders,
    future_spend,
    normalized_gini,
)
from ml.clv_scoring import score_clv
from ml.clv_value import OrderValueModel, horizon_season, value_history, value_season
from ml.data import LifecycleData

HORIZON = 120


@pytest.fixture(scope="module")
def sim():
    return simulate_lifecycle(n_customers=900, n_days=520, seed=3)


@pytest.fixture(scope="module")
def comparison(sim):
    data, as_of = sim
    return compare_clv_models(
        data, as_of, HORIZON, n_cutoffs=2, extra_scores={"perfect": _actual(sim)}
    )


def _actual(sim):
    data, as_of = sim
    return future_spend(data, as_of - pd.Timedelta(days=HORIZON), HORIZON, as_of=as_of)


def test_normalized_gini_properties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    s = np.round(rng.random(400) + 0.5 * y, 1)  # many ties
    assert normalized_gini(y, s) == pytest.approx(2 * roc_auc_score(y, s) - 1)
    spend = rng.gamma(0.5, 100.0, 1000)
    assert normalized_gini(spend, spend) == pytest.approx(1.0)
    assert normalized_gini(spend, np.log1p(spend)) == pytest.approx(1.0)  # ranking only
    assert normalized_gini(spend, -spend) == pytest.approx(-1.0)
    assert abs(normalized_gini(spend, rng.random(1000))) < 0.1
    assert np.isnan(normalized_gini(np.zeros(5), np.arange(5.0)))


def test_decile_table_and_metrics():
    actual = np.arange(100.0)
    table = decile_table(actual, actual)
    assert list(table["decile"]) == list(range(1, 11)) and (table["n"] == 10).all()
    assert table.loc[0, "actual_mean"] == pytest.approx(94.5)  # decile 1 = highest
    m = clv_metrics(actual, actual * 1.1)
    assert m["aggregate_error"] == pytest.approx(0.1) and m["gini"] == pytest.approx(1.0)
    assert m["decile_calibration_error"] == pytest.approx(0.1)
    assert clv_metrics(actual, actual)["decile_calibration_error"] == pytest.approx(0.0)


def test_future_spend_counts_returns_as_zero_and_skips_cancelled():
    orders = pd.DataFrame(
        {
            "order_id": ["1", "2", "3", "4", "5", "5", "6"],
            "customer_id": ["a", "b", "a", "a", "b", "b", "c"],
            "ordered_at": pd.to_datetime(["2024-01-01"] * 2 + ["2024-02-01"] * 4 + ["2024-02-02"]),
            "status": ["delivered"] * 3 + ["cancelled", "delivered", "returned", "delivered"],
            "order_total": [10.0, 20.0, 30.0, 40.0, 50.0, 50.0, 70.0],
            "updated_at": pd.to_datetime(
                ["2024-01-01"] * 2 + ["2024-02-01"] * 3 + ["2024-02-20", "2024-02-02"]
            ),
        }
    )
    data = LifecycleData(orders=orders)
    spend = future_spend(data, "2024-01-15", 30, as_of="2024-03-01")
    assert spend.to_dict() == {"a": 30.0, "b": 0.0}  # c is not in the population
    count = future_orders(data, "2024-01-15", 30, as_of="2024-03-01")
    assert count.to_dict() == {"a": 1.0, "b": 1.0}  # a returned order is an order worth 0
    assert future_spend(data, "2024-01-15", 30, as_of="2024-02-14").to_dict()["b"] == 50.0
    with pytest.raises(ValueError, match="not matured"):
        future_spend(data, "2024-01-15", 30, as_of="2024-02-10")


def test_compare_returns_both_models(comparison, sim):
    r = comparison
    assert r["horizon_days"] == HORIZON and r["n_holdout"] > 500
    assert r["winner"] in {"btyd", "gbm"} and r["reason"]
    for name in ("btyd", "gbm"):
        m = r[name]
        assert set(m) >= {"gini", "decile_calibration_error", "aggregate_error"}
        assert m["gini"] > 0.4  # both rank far better than chance
        assert abs(m["aggregate_error"]) < 0.5
        assert list(r["deciles"][name]["decile"]) == list(range(1, 11))
    assert r["extra"]["perfect"]["gini"] == pytest.approx(1.0)
    holdout = r["holdout"]
    assert list(holdout.columns) == ["customer_id", "actual", "btyd", "gbm"]
    assert holdout["actual"].sum() == pytest.approx(r["gbm"]["actual_total"])
    assert (holdout[["btyd", "gbm"]] >= 0).all().all()
    assert r["holdout_cutoff"] == sim[1] - pd.Timedelta(days=HORIZON)


def test_compare_ignores_data_after_as_of(comparison, sim):
    data, as_of = sim
    later = data.orders[data.orders["ordered_at"] < day(400)].copy()
    later["order_id"] = "late-" + later["order_id"]
    shift = pd.Timedelta(days=200)
    for col in ("ordered_at", "updated_at", "delivered_at", "promised_delivery_date"):
        later[col] = later[col] + shift
    grown = LifecycleData(
        orders=pd.concat([data.orders, later[later["updated_at"] > as_of]]),
        reviews=data.reviews,
        surveys=data.surveys,
        checkouts=data.checkouts,
        customers=data.customers,
    )
    again = compare_clv_models(grown, as_of, HORIZON, n_cutoffs=2)
    for name in ("btyd", "gbm"):
        assert again[name]["gini"] == pytest.approx(comparison[name]["gini"])


def test_winner_rule_and_feasible_horizon(sim):
    res = {
        "btyd": {"gini": 0.60, "decile_calibration_error": 0.10, "aggregate_error": 0.02},
        "gbm": {"gini": 0.65, "decile_calibration_error": 0.20, "aggregate_error": 0.05},
    }
    assert _winner(res, 0.005, 0.25)[0] == "gbm"
    assert _winner(res, 0.1, 0.25)[0] == "btyd"  # tie on Gini: calibration decides
    res["gbm"]["aggregate_error"] = -0.4
    assert _winner(res, 0.005, 0.25)[0] == "btyd"  # too far off in total
    data, as_of = sim
    h = feasible_horizon(data, as_of, 365, n_cutoffs=2, min_history_days=60)
    assert h % 30 == 0 and HORIZON <= h < 365
    with pytest.raises(ValueError, match="too short"):
        feasible_horizon(data, day(100), 365)
    model = GbmClvModel(horizon_days=HORIZON, n_cutoffs=1, max_iter=50).fit(data, as_of)
    pred = model.predict(data, as_of)
    assert len(pred) > 500 and (pred["expected_spend"] >= 0).all()


def test_score_clv_uses_the_winner_for_spend_and_keeps_btyd_alive_probabilities(sim):
    data, as_of = sim
    scoring = score_clv(data, as_of, horizon_days=HORIZON)
    scores = scoring.scores.set_index("customer_id")
    summary = summary_from_orders(data.orders, as_of)
    assert set(scores.index) == set(summary["customer_id"])
    assert np.isfinite(scores["clv"]).all() and (scores["clv"] >= 0).all()
    assert (
        scoring.winner == scoring.comparison["winner"]
        or "could not" in scoring.comparison["reason"]
    )
    assert scoring.holdout is not None and len(scoring.holdout) == scoring.comparison["n_holdout"]
    btyd_only = scoring.btyd_model.score(summary, HORIZON)
    btyd_only = btyd_only.set_index("customer_id").reindex(scores.index)
    np.testing.assert_allclose(scores["p_alive"], btyd_only["p_alive"])
    if scoring.winner == "gbm":
        gbm = scoring.gbm_model.predict(data, as_of).set_index("customer_id")["expected_spend"]
        np.testing.assert_allclose(scores["clv"], gbm.reindex(scores.index))
        assert scores["clv_lower"].isna().all()
    else:
        np.testing.assert_allclose(scores["clv"], btyd_only["clv"])


def test_score_clv_on_a_short_history_keeps_btyd_and_says_why(sim):
    data, as_of = sim
    short = data.as_of(as_of)
    start = short.orders["ordered_at"].min()
    scoring = score_clv(short, start + pd.Timedelta(days=60), horizon_days=HORIZON)
    assert scoring.winner == "btyd" and scoring.comparison["reason"].startswith("not compared")
    assert scoring.holdout is None and len(scoring.scores) > 0


def test_heavy_tailed_spend_falls_back_to_observed_means_instead_of_failing(sim):
    data, as_of = sim
    summary = summary_from_orders(data.orders, as_of)
    model = fit_clv(summary)
    model.spend_model = model.spend_model.with_params({"p": 2.0, "q": 0.8, "gamma": 10.0})
    scores = model.score(summary, horizon_days=HORIZON, n_draws=20)
    assert np.isfinite(scores["clv"]).all()
    x, m = summary["frequency"].to_numpy(), summary["monetary_value"].to_numpy()
    spend = scores["expected_spend_12m"] / scores["expected_orders_12m"]
    np.testing.assert_allclose(spend[x > 0], m[x > 0])
    np.testing.assert_allclose(spend[x == 0], m[(x > 0) & (m > 0)].mean())


def test_expected_orders_and_clv_intervals_bracket_the_point_estimates(sim):
    data, as_of = sim
    summary = summary_from_orders(data.orders, as_of)
    scores = fit_clv(summary).score(summary, horizon_days=HORIZON, n_draws=50)
    lo, mid, hi = (
        scores[c] for c in ("expected_orders_lower", "expected_orders_12m", "expected_orders_upper")
    )
    assert (lo <= mid * (1 + 1e-9)).all() and (mid <= hi * (1 + 1e-9)).all()
    assert (hi > lo).any()


def test_value_history_uses_every_order_and_only_abandoned_carts():
    orders = pd.DataFrame(
        {
            "order_id": ["1", "2", "3", "4"],
            "customer_id": ["a", "a", "a", "b"],
            "ordered_at": pd.to_datetime(["2024-01-05", "2024-02-05", "2024-12-05", "2024-12-06"]),
            "status": ["delivered", "cancelled", "returned", "delivered"],
            "order_total": [10.0, 20.0, 30.0, 40.0],
            "updated_at": pd.to_datetime(["2024-01-05", "2024-02-05", "2024-12-20", "2024-12-06"]),
        }
    )
    checkouts = pd.DataFrame(
        {
            "checkout_id": ["c1", "c2", "c3", "c4"],
            "customer_id": ["a", "a", "b", "b"],
            "started_at": pd.to_datetime(["2024-01-05", "2024-03-01", "2024-12-01", "2025-01-09"]),
            "cart_value": [10.0, 50.0, 60.0, 70.0],
            "completed_order_id": ["1", None, None, None],
        }
    )
    data = LifecycleData(orders=orders, checkouts=checkouts)
    h = value_history(data, pd.Timestamp("2024-12-31"))
    assert h.loc["a"].to_dict() == {
        "n_orders": 3.0,  # cancelled and returned orders show the basket size too
        "value_sum": 60.0,
        "n_carts": 1.0,  # c1 became order 1; c4 is after the cutoff
        "cart_value_sum": 50.0,
    }
    assert h.loc["b", "n_carts"] == 1.0 and h.loc["b", "cart_value_sum"] == 60.0
    season = pd.Series(1.0, index=range(1, 13)).where(lambda x: x.index != 12, 2.0)
    deflated = value_history(data, pd.Timestamp("2024-12-31"), season)
    assert deflated.loc["a", "value_sum"] == pytest.approx(10 + 20 + 30 / 2)
    assert deflated.loc["b", "cart_value_sum"] == pytest.approx(30.0)
    assert horizon_season(season, pd.Timestamp("2024-11-30"), 62) == pytest.approx(1.5)
    assert (value_season(data, pd.Timestamp("2024-12-31")) == 1.0).all()  # too few orders


def _gamma_gamma_population(n: int, seed: int):
    """Customers with mean order value 4 / nu (nu ~ Gamma(4, rate 48)), Gamma(4, nu) orders
    and Gamma(2, 2 nu / 4) abandoned carts (the same mean, noisier)."""
    rng = np.random.default_rng(seed)
    nu = rng.gamma(4.0, 1.0 / 48.0, n)
    k_orders, k_carts = 1 + rng.poisson(1.5, n), rng.poisson(1.5, n)
    value = np.array([rng.gamma(4.0, 1.0 / v, k).sum() for v, k in zip(nu, k_orders, strict=True)])
    carts = np.array([rng.gamma(2.0, 2.0 / v, k).sum() for v, k in zip(nu, k_carts, strict=True)])
    history = pd.DataFrame(
        {"n_orders": k_orders * 1.0, "value_sum": value, "n_carts": k_carts * 1.0}
    ).assign(cart_value_sum=carts)
    return history, 4.0 / nu


def test_order_value_model_recovers_the_prior_and_shrinks_with_cart_evidence():
    history, true_mean = _gamma_gamma_population(4000, seed=1)
    model = OrderValueModel().fit(history)
    params = model.params_
    assert params["p"] == pytest.approx(4.0, rel=0.25)
    assert params["cart_shape"] == pytest.approx(2.0, rel=0.25)
    assert params["cart_ratio"] == pytest.approx(1.0, rel=0.1)
    observed = history["value_sum"] / history["n_orders"]
    no_carts = OrderValueModel().fit(history.assign(n_carts=0.0, cart_value_sum=0.0))
    assert no_carts.params_["cart_shape"] == 0.0
    errors = {
        name: float(np.mean((pred - true_mean) ** 2))
        for name, pred in (
            ("observed", observed.to_numpy()),
            ("orders", no_carts.predict(history.assign(n_carts=0.0, cart_value_sum=0.0))),
            ("orders+carts", model.predict(history)),
        )
    }
    assert errors["orders+carts"] < errors["orders"] < errors["observed"]


def test_gbm_is_two_part_and_calibrated_on_its_training_cutoffs(sim):
    data, as_of = sim
    model = GbmClvModel(horizon_days=HORIZON, n_cutoffs=2).fit(data, as_of)
    assert not set(MONETARY) & set(model.feature_names_)
    assert {"carts_total", "btyd_expected_purchases"} <= set(model.feature_names_)
    assert 0.5 < model.spend_factor_ < 1.5 and len(model.cutoffs_) == 2
    assert np.isfinite(list(model.value_model_.params_.values())[:3]).all()
    total_pred, total_actual = 0.0, 0.0
    for cutoff in model.cutoffs_:
        pred = model.predict(data.as_of(as_of), cutoff).set_index("customer_id")
        actual = future_spend(data, cutoff, HORIZON, as_of=as_of)
        total_pred += pred["expected_spend"].reindex(actual.index).sum()
        total_actual += actual.sum()
    assert total_pred == pytest.approx(total_actual, rel=0.02)
