"""Trait oracle (simulator.oracle) against Monte-Carlo runs of the simulator's process.

Three checks: P(alive | history, traits) is calibrated on paths of the order process written
out here independently (and on the real engine), and the forward formulas (P(no kept order),
expected spend with a season) match simulated futures.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from simulator import Simulation, SimulatorConfig, ground_truth
from simulator.config import ACQUISITION_CHANNELS
from simulator.oracle import (
    BuyerHistory,
    Feedback,
    cart_rates,
    expected_spend,
    feedback_loglik,
    kept_value_factor,
    last_order_dropout,
    p_alive,
    p_no_order,
    population_oracle,
)
from simulator.orders import draw_feedback
from simulator.population import effective_dropout

CFG = SimulatorConfig()


def _order_fates(rng: np.random.Generator, n: int, p: float):
    """(cancelled, late, dropout, returned) of ``n`` orders, as in simulator.orders."""
    cancel = rng.random(n) < CFG.cancel_rate
    late = ~cancel & (rng.random(n) < CFG.late_share)
    d = np.where(late, min(1.0, CFG.late_dropout_multiplier * p), p)
    returned = ~cancel & (rng.random(n) < np.where(late, CFG.return_rate_late, CFG.return_rate))
    return cancel, late, rng.random(n) < d, returned


def _histories(lam: float, p: float, horizon: float, n: int, seed: int):
    """Paths from a first order at 0 to ``horizon``: alive, last order time, its fate, count."""
    rng = np.random.default_rng(seed)
    t_last, n_orders = np.zeros(n), np.ones(n, int)
    cancel, late, drop, _ = _order_fates(rng, n, p)
    alive = ~drop
    active = alive.copy()
    while active.any():
        idx = np.flatnonzero(active)
        t_next = t_last[idx] + rng.exponential(1.0 / lam, idx.size)
        ordered = t_next <= horizon
        active[idx[~ordered]] = False
        idx, t_next = idx[ordered], t_next[ordered]
        c, lt, dr, _ = _order_fates(rng, idx.size, p)
        t_last[idx], n_orders[idx] = t_next, n_orders[idx] + 1
        cancel[idx], late[idx], alive[idx] = c, lt, ~dr
        active[idx] = ~dr
    return alive, horizon - t_last, cancel, late, n_orders


def _assert_calibrated(pred: np.ndarray, truth: np.ndarray, n_bins: int = 8) -> None:
    edges = np.quantile(pred, np.linspace(0, 1, n_bins + 1)[1:-1])
    bins = np.searchsorted(edges, pred)
    for b in np.unique(bins):
        m = bins == b
        se = np.sqrt(max(np.mean(pred[m] * (1 - pred[m])), 1e-4) / m.sum())
        assert abs(pred[m].mean() - truth[m].mean()) < 4 * se + 1e-3, (b, m.sum())


@pytest.mark.parametrize(("lam", "p"), [(1 / 30, 0.1), (1 / 120, 0.3), (0.2, 0.6)])
def test_p_alive_is_calibrated_on_the_order_process(lam: float, p: float) -> None:
    alive, since, cancel, late, n_orders = _histories(lam, p, 240.0, 120_000, seed=7)
    late_known = late.astype(float)
    d = last_order_dropout(CFG, np.full(alive.size, p), late_known, cancel)
    exact = p_alive(np.full(alive.size, lam), d, since)
    _assert_calibrated(exact, alive)
    for many in (n_orders == 1, n_orders > 1):  # earlier orders carry no evidence
        _assert_calibrated(exact[many], alive[many], n_bins=4)
    # Fate of the last order unknown: the average dropout q is the right prior.
    unknown = last_order_dropout(CFG, np.full(alive.size, p), np.full(alive.size, np.nan), 0)
    assert np.allclose(unknown, effective_dropout(CFG, np.array([p])))
    _assert_calibrated(p_alive(np.full(alive.size, lam), unknown, since), alive)


def test_abandoned_carts_and_edge_cases() -> None:
    lam, d, since = np.array([0.02, 0.02, 0.02]), np.array([0.2, 0.2, 1.0]), np.full(3, 100.0)
    ra, rd = cart_rates(CFG, lam)
    base = p_alive(lam, d, since)
    with_carts = p_alive(lam, d, since, np.array([0, 2, 2]), ra, rd)
    assert with_carts[0] < base[0] < with_carts[1]  # no cart is evidence of a dropout
    assert with_carts[2] == 0.0 and base[2] == 0.0  # certain dropout after the last order
    assert p_alive(lam, np.zeros(3), since)[0] == 1.0
    assert p_alive(lam, d, since, np.array([1, 0, 0]), ra, 0.0)[0] == 1.0  # dead: no carts


def _future(lam, p, mu, season, n, seed, waiting=False):
    """Simulated kept orders within 90 days and spend within len(season) days from T = 0."""
    rng = np.random.default_rng(seed)
    mean_value = 65.0
    t = rng.exponential(1.0 / (mu if waiting else lam), n)
    first90, spend = np.full(n, np.inf), np.zeros(n)
    active = t < season.size
    while active.any():
        idx = np.flatnonzero(active)
        c, _, dr, ret = _order_fates(rng, idx.size, p)
        value = rng.gamma(CFG.spend_shape, mean_value / CFG.spend_shape, idx.size)
        kept = ~c
        first90[idx[kept]] = np.minimum(first90[idx[kept]], t[idx[kept]])
        spend[idx] += np.where(kept & ~ret, value * season[np.floor(t[idx]).astype(int)], 0.0)
        t[idx] += rng.exponential(1.0 / lam, idx.size)
        active[idx] = ~dr & (t[idx] < season.size)
    return first90 > 90.0, spend


@pytest.mark.parametrize(("lam", "p", "waiting"), [(1 / 40, 0.25, False), (0.1, 0.5, False),
                                                   (1 / 60, 0.2, True)])  # fmt: skip
def test_future_orders_and_spend_match_the_process(lam: float, p: float, waiting: bool) -> None:
    season = np.ones(365)
    season[300:330] = 1.45
    mu = 1 / 14
    none90, spend = _future(lam, p, mu, season, 150_000, seed=3, waiting=waiting)
    one = np.ones(1)
    q = effective_dropout(CFG, p * one)
    kw = {"mu": mu * one, "waiting": np.array([waiting])}
    pred0 = p_no_order(one, lam * one, p * one, CFG.cancel_rate, 90.0, **kw)[0]
    se0 = np.sqrt(pred0 * (1 - pred0) / none90.size)
    assert abs(none90.mean() - pred0) < 4 * se0
    pred = expected_spend(one, lam * one, q, 65.0 * one, season, kept_value_factor(CFG), **kw)
    assert abs(spend.mean() - pred[0]) < 4 * spend.std() / np.sqrt(spend.size)
    half = expected_spend(0.5 * one, lam * one, q, 65.0 * one, season, 1.0, **kw)[0]
    assert half == pytest.approx(0.5 * pred[0] / kept_value_factor(CFG))


@pytest.mark.parametrize(("p", "late", "returned"), [(0.05, 0, 0), (0.5, 1, 1), (0.3, 0, 1)])
def test_feedback_likelihood_matches_the_engine(p: float, late: int, returned: int) -> None:
    n, days = 200_000, 4 * late
    orders = {
        "cancelled": np.zeros(n, bool),
        "late": np.full(n, bool(late)),
        "returned": np.full(n, bool(returned)),
        "late_days": np.full(n, days),
        "deliver_day": np.zeros(n, int),
    }
    drawn = draw_feedback(np.random.default_rng(1), CFG, orders, np.full(n, p))
    for is_nps, answers in ((False, drawn["reviews"]["rating"]), (True, drawn["surveys"]["score"])):
        levels = np.arange(0, 11) if is_nps else np.arange(1, 6)
        one = np.ones(levels.size)
        fb = Feedback(levels * 0, one * is_nps, levels, one * late, one * days, one * returned)
        prob = np.exp(feedback_loglik(fb, np.array([p]))[:, 0])
        assert prob.sum() == pytest.approx(1.0)
        freq = (answers[:, None] == levels[None, :]).mean(axis=0)
        assert np.all(np.abs(freq - prob) < 4 * np.sqrt(prob * (1 - prob) / answers.size) + 1e-4)


@pytest.fixture(scope="module")
def engine():
    """A real simulation: each buyer's history at day 300 (BuyerHistory fields), the ground
    truth then, and whether a kept order came in the 90 days after (from the later days)."""
    start, t_days = dt.date(2024, 1, 1), 300
    sim = Simulation(SimulatorConfig(customers=4000, start=start, end=start + dt.timedelta(392)))
    before, after, carts, answers, truth = [], [], [], [], None
    for _, frames in sim.days():
        if sim.days_done <= t_days:
            before.append(frames["orders"])
            carts.append(frames["checkouts"])
            answers.append(frames["reviews"].rename(columns={"rating": "score"}))
            answers.append(
                frames["surveys"].assign(
                    order_id=None, created_at=frames["surveys"]["responded_at"]
                )
            )
        else:
            after.append(frames["orders"])
        if sim.days_done == t_days:
            truth = ground_truth(sim).set_index("customer_id")
    t_end = pd.Timestamp(start) + pd.Timedelta(days=t_days)

    def ts(col: pd.Series) -> pd.Series:
        return pd.to_datetime(col, format="ISO8601", utc=True).dt.tz_localize(None)

    o = pd.concat(before).sort_values(["order_id", "updated_at"], kind="mergesort")
    o = o.drop_duplicates("order_id", keep="last")  # latest version (same-second ties: rare)
    o = o.sort_values(["customer_id", "ordered_at", "order_id"], kind="mergesort")
    ordered, promised = ts(o["ordered_at"]), pd.to_datetime(o["promised_delivery_date"])
    delivered = ts(o["delivered_at"]).dt.normalize()
    late = pd.Series(np.nan, index=o.index)
    late[delivered.notna()] = (delivered > promised)[delivered.notna()].astype(float)
    late[delivered.isna() & o["status"].isin(["placed", "shipped"]) & (promised < t_end)] = 1.0
    day = ((ordered.dt.normalize() - pd.Timestamp(start)) / pd.Timedelta(days=1)).astype(int)
    o = o.assign(
        t=ordered,
        delivered=delivered,
        late_days=((delivered - promised) / pd.Timedelta(days=1)).clip(lower=0),
        ret=(o["status"] == "returned").astype(float),  # a later return is ignored here
        late=late,
        ok=((o["status"] == "cancelled") | (late == 0)).astype(float),
        is_late=(late == 1).astype(float),
        z=o["order_total"] / sim.season[day.to_numpy()],
    )
    g = o.groupby("customer_id")
    last = g.tail(1).set_index("customer_id")
    tr = truth.loc[last.index]
    k = pd.concat(carts)
    k = k[k["completed_order_id"].isna()]
    late_cart = ts(k["started_at"]).to_numpy() > last["t"].reindex(k["customer_id"]).to_numpy()
    n_after = k[late_cart].groupby("customer_id").size().reindex(last.index, fill_value=0)
    n_all = k.groupby("customer_id").size().reindex(last.index, fill_value=0)
    k_day = (ts(k["started_at"]).dt.normalize() - pd.Timestamp(start)) / pd.Timedelta(days=1)
    k_z = k["cart_value"] / sim.season[k_day.astype(int).to_numpy()]
    signup = ts(tr["signed_up_at"])
    hist = pd.DataFrame(
        {
            "channel": tr["acquisition_channel"].map(ACQUISITION_CHANNELS.index),
            "n_orders": g.size().astype(float),
            "span": (last["t"] - g["t"].min()) / pd.Timedelta(days=1),
            "exposure": (last["t"] - signup) / pd.Timedelta(days=1),
            "since_last": (t_end - last["t"]) / pd.Timedelta(days=1),
            "earlier_ok": g["ok"].sum() - last["ok"],
            "earlier_late": g["is_late"].sum() - last["is_late"],
            "last_late": last["late"],
            "last_cancelled": (last["status"] == "cancelled").astype(float),
            "carts_before": (n_all - n_after).astype(float),
            "carts_after": n_after.astype(float),
            "value_sum": g["z"].sum(),
            "cart_value_sum": k_z.groupby(k["customer_id"]).sum().reindex(last.index).fillna(0),
        }
    )
    # Answers with their order's fate; an NPS answer (no order id) goes to the latest order
    # delivered 1-5 days before it.
    fb = pd.concat(answers, ignore_index=True)
    fb = fb.merge(o[o["delivered"].notna()], on="customer_id", suffixes=("", "_o"))
    lag = (ts(fb["created_at"]).dt.normalize() - fb["delivered"]) / pd.Timedelta(days=1)
    nps = fb["order_id"].isna()
    fb = fb[(nps & lag.between(1, 5)) | (fb["order_id"] == fb["order_id_o"])]
    fb = fb.sort_values("delivered").drop_duplicates(["review_id", "response_id"], keep="last")
    feedback = Feedback(
        hist.index.get_indexer(fb["customer_id"]), fb["order_id"].isna().to_numpy(),
        fb["score"].to_numpy(float), fb["late"].to_numpy(float), fb["late_days"].to_numpy(float),
        fb["ret"].to_numpy(float),
    )  # fmt: skip
    a = pd.concat(after).sort_values(["order_id", "updated_at"], kind="mergesort")
    a = a.drop_duplicates("order_id", keep="last")
    a = a[(a["status"] != "cancelled") & (ts(a["ordered_at"]) < t_end + pd.Timedelta(days=90))]
    churned = ~hist.index.isin(a["customer_id"])
    return hist, tr, churned, sim.season[t_days : t_days + 365], feedback


def test_trait_oracle_is_calibrated_on_the_engine(engine) -> None:
    hist, tr, _, _, _ = engine
    lam, p = tr["lambda"].to_numpy(), tr["p_dropout"].to_numpy()
    since, n_carts = hist["since_last"].to_numpy(), hist["carts_after"].to_numpy()
    d = last_order_dropout(CFG, p, hist["last_late"], hist["last_cancelled"] > 0)
    alive = tr["alive_at_end"].to_numpy()
    ra, rd = cart_rates(CFG, lam)
    for group, rate in ((alive, ra), (~alive, rd)):  # carts since the last order: Poisson
        expected = np.sum((rate * since)[group])
        assert abs(n_carts[group].sum() - expected) < 4 * np.sqrt(expected)
    full = p_alive(lam, d, since, n_carts, ra, rd)
    orders_only = p_alive(lam, tr["p_dropout_effective"].to_numpy(), since)
    assert len(alive) > 2000 and 0.2 < alive.mean() < 0.8
    _assert_calibrated(full, alive, n_bins=5)
    _assert_calibrated(orders_only, alive, n_bins=5)
    assert np.mean((full - alive) ** 2) < np.mean((orders_only - alive) ** 2)  # carts inform


def test_population_oracle_is_calibrated_on_the_engine(engine) -> None:
    hist, tr, churned, season, feedback = engine
    assert len(feedback.row) > 1000 and (feedback.row >= 0).all()
    bh = BuyerHistory(**{c: hist[c].to_numpy() for c in hist})
    pop = population_oracle(CFG, bh, season, feedback, n_lam=100, n_p=40)
    alive = tr["alive_at_end"].to_numpy()
    _assert_calibrated(pop["p_alive"], alive, n_bins=5)
    _assert_calibrated(pop["p_no_order"], churned.astype(float), n_bins=5)
    trait = p_alive(tr["lambda"], tr["p_dropout_effective"], hist["since_last"])
    assert np.mean((pop["p_alive"] - alive) ** 2) > np.mean((trait - alive) ** 2)  # knows less
    # Spend: the oracle's expected spend given alive, against the true traits' spend.
    true_spend = expected_spend(
        alive, tr["lambda"], tr["p_dropout_effective"], tr["spend_mean"], season,
        kept_value_factor(CFG),
    )  # fmt: skip
    assert pop["expected_spend"].sum() == pytest.approx(true_spend.sum(), rel=0.1)
