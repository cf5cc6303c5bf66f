"""Benchmark: churn and CLV models against population, trait and latent-state oracles.

Run on demand:  uv run python benchmarks/bench_oracle.py [--customers 20000 --days 730 --seed 42]

One simulation (:mod:`simulator`): ``--days`` of history up to the cutoff ``E`` (the end of the
last history day), then 365 more days to observe the future. The number of customers who sign
up over the whole run is scaled so that about ``--customers`` have signed up by ``E`` (the
demo's scale). The ground truth is taken at ``E`` (:func:`simulator.ground_truth` mid-way);
the models see the landed data known at ``E`` only, built straight from the simulator's frames
(no warehouse).

Rows: the customers with a non-cancelled order by ``E``. Churn label: no non-cancelled order in
the 90 days after ``E`` (:func:`ml.features.churn_labels`); CLV actual: spend in the 365 days
after ``E`` (:func:`ml.clv_challenger.future_spend`, via ``compare_clv_models``). Scores:

* model: :class:`ml.churn.ChurnModel` as in the nightly pipeline; BTYD and GBM CLV via
  :func:`ml.clv_challenger.compare_clv_models` (``fit_clv`` + ``GbmClvModel``, the two-part
  challenger: boosted order count x empirical-Bayes order value);
* baselines: recency days, BTYD P(no purchase in 90 days) (the model's own features);
* trait oracle (q): P(alive) from the true traits and the orders only, the last order's
  dropout taken as the average ``q`` (:mod:`simulator.oracle`);
* trait oracle (full): also uses the last order's known fate (late / on time / cancelled)
  and the abandoned carts since: Bayes-optimal given everything observable and the traits;
* latent oracle: knows whether the customer can still order (the ground truth's state);
* population oracle: knows neither state nor traits, only the simulator's population priors:
  the Bayes posterior given the full observable history
  (:func:`simulator.oracle.population_oracle`). It is what a perfectly specified model of the
  observable data would score: the *achievable* reference (up to the approximations noted
  in :class:`simulator.oracle.Feedback` and :func:`simulator.oracle.last_order_dropout`).

Table columns ``gap_*``: the reference's AUC / Gini minus the row's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

import numpy as np
import pandas as pd

from ml.churn import ChurnModel
from ml.clv_challenger import compare_clv_models
from ml.data import SCHEMAS, LifecycleData, order_snapshot
from ml.features import DAY, build_features, churn_labels
from ml.metrics import brier_score, expected_calibration_error, roc_auc
from simulator import Simulation, SimulatorConfig, ground_truth
from simulator.calendar import signup_weights
from simulator.config import ACQUISITION_CHANNELS
from simulator.oracle import (
    BuyerHistory,
    Feedback,
    cart_rates,
    expected_spend,
    kept_value_factor,
    last_order_dropout,
    p_alive,
    p_no_order,
    population_oracle,
)

START = dt.date(2024, 1, 1)
FUTURE_DAYS = 365
CHURN_HORIZON = 90
REFS = {
    "population oracle": "population",
    "trait oracle (q)": "trait_q",
    "trait oracle (full)": "trait_full",
    "latent oracle": "latent",
}


def _typed(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """The model columns of a landed frame, timestamps parsed (fast, fixed ISO format)."""
    out = frame[list(SCHEMAS[table])].copy()
    for col, kind in SCHEMAS[table].items():
        if kind == "datetime":
            out[col] = pd.to_datetime(out[col], format="ISO8601", utc=True).dt.tz_localize(None)
    return out


def simulate(customers: int, days: int, seed: int):
    """(data through E + 365 days, truth at E, config, spend season per day from the start)."""
    total = days + FUTURE_DAYS
    base = SimulatorConfig()
    weights = signup_weights(START, total, base.annual_signup_growth, base.weekly_signup_factors)
    n_total = round(customers / weights[:days].sum())
    config = SimulatorConfig(
        customers=n_total, start=START, end=START + dt.timedelta(days=total - 1), seed=seed
    )
    sim = Simulation(config)
    parts: dict[str, list[pd.DataFrame]] = {t: [] for t in SCHEMAS}
    truth = None
    for _, frames in sim.days():
        for table in SCHEMAS:
            parts[table].append(frames[table])
        if sim.days_done == days:
            truth = ground_truth(sim)
    data = LifecycleData(**{t: _typed(pd.concat(parts[t], ignore_index=True), t) for t in parts})
    return data, truth.set_index("customer_id"), config, sim.season


def order_fates(known: LifecycleData, cutoff: pd.Timestamp, season: np.ndarray) -> pd.DataFrame:
    """Every order known at ``cutoff`` (any status, by customer and time) with its fate: late
    1 / on time 0 / unknown NaN (a cancelled order is never late), whole days late, and the
    order value divided by the season factor of its day (``season`` indexed from START)."""
    snap = order_snapshot(known.orders, cutoff)
    o = snap.sort_values(["customer_id", "ordered_at", "order_id"], kind="mergesort")
    promised = o["promised_delivery_date"].dt.normalize()
    delivered = o["delivered_at"].dt.normalize()
    late = pd.Series(np.nan, index=o.index)
    has = delivered.notna()
    late[has] = (delivered[has] > promised[has]).astype(float)
    # An on-time order is delivered by the end of its promised day: undelivered after it = late.
    pending = o["status"].isin(["placed", "shipped"])
    late[~has & pending & (promised <= cutoff.normalize())] = 1.0
    cancelled = o["status"] == "cancelled"
    day = ((o["ordered_at"].dt.normalize() - pd.Timestamp(START)) / DAY).astype(int)
    return o.assign(
        late=late,
        late_days=((delivered - promised) / DAY).clip(lower=0),
        delivered_day=delivered,
        ok=(cancelled | (late == 0.0)).astype(float),
        is_late=(late == 1.0).astype(float),
        cancelled=cancelled,
        z=o["order_total"] / season[day.to_numpy()],
    )


def _season_of(stamps: pd.Series, season: np.ndarray) -> np.ndarray:
    return season[((stamps.dt.normalize() - pd.Timestamp(START)) / DAY).astype(int).to_numpy()]


def observed_history(
    known: LifecycleData, cutoff: pd.Timestamp, o: pd.DataFrame, season: np.ndarray
) -> pd.DataFrame:
    """Each buyer's history as known at ``cutoff``: the :class:`simulator.oracle.BuyerHistory`
    fields by customer_id, from the orders of :func:`order_fates` and the abandoned carts."""
    g = o.groupby("customer_id")
    last = g.tail(1).set_index("customer_id")
    cust = known.customers.drop_duplicates("customer_id").set_index("customer_id")
    cust = cust.reindex(last.index)
    c = known.checkouts
    c = c[c["completed_order_id"].isna() & (c["started_at"] <= cutoff)]
    after = c["started_at"].to_numpy() > last["ordered_at"].reindex(c["customer_id"]).to_numpy()
    n_after = c[after].groupby("customer_id").size().reindex(last.index, fill_value=0)
    n_all = c.groupby("customer_id").size().reindex(last.index, fill_value=0)
    cart_z = (c["cart_value"] / _season_of(c["started_at"], season)).groupby(c["customer_id"])
    t_end = cutoff.normalize() + DAY  # the end of the cutoff day
    channels = {name: i for i, name in enumerate(ACQUISITION_CHANNELS)}
    return pd.DataFrame(
        {
            "channel": cust["acquisition_channel"].map(channels).astype(int),
            "n_orders": g.size().astype(float),
            "span": (last["ordered_at"] - g["ordered_at"].min()) / DAY,
            "exposure": (last["ordered_at"] - cust["signed_up_at"]) / DAY,
            "since_last": (t_end - last["ordered_at"]) / DAY,
            "earlier_ok": g["ok"].sum() - last["ok"],
            "earlier_late": g["is_late"].sum() - last["is_late"],
            "last_late": last["late"],
            "last_cancelled": last["cancelled"].astype(float),
            "carts_before": (n_all - n_after).astype(float),
            "carts_after": n_after.astype(float),
            "value_sum": g["z"].sum(),
            "cart_value_sum": cart_z.sum().reindex(last.index, fill_value=0.0),
        }
    )


def observed_feedback(
    known: LifecycleData,
    cutoff: pd.Timestamp,
    o: pd.DataFrame,
    rows: pd.Index,
    config: SimulatorConfig,
) -> Feedback:
    """Ratings and NPS answers known at ``cutoff`` of the customers ``rows``, with the rated
    order's fate. An NPS answer names no order: it is matched to the customer's latest order
    delivered 1-5 days before it (the simulator's survey delay). A delivered order not yet
    returned may still be: its return probability given no return so far."""
    last_day = cutoff.normalize()
    d = o[o["delivered_day"].notna()].copy()
    r0 = np.where(d["late"] == 1.0, config.return_rate_late, config.return_rate)
    open_share = np.clip(21 - (last_day - d["delivered_day"]) / DAY, 0, 19) / 19
    still = r0 * open_share / (1 - r0 * (1 - open_share))
    d["ret"] = np.where(d["status"] == "returned", 1.0, still)
    cols = ["late", "late_days", "ret"]
    rev = known.reviews[known.reviews["created_at"] <= cutoff]
    rev = rev.merge(d[["order_id", *cols]], on="order_id").rename(columns={"rating": "score"})
    srv = known.surveys[known.surveys["responded_at"] <= cutoff]
    srv = srv.merge(d[["customer_id", "delivered_day", *cols]], on="customer_id")
    lag = (srv["responded_at"].dt.normalize() - srv["delivered_day"]) / DAY
    srv = srv[lag.between(1, 5)].sort_values(["response_id", "delivered_day"])
    srv = srv.drop_duplicates("response_id", keep="last")
    both = pd.concat([rev.assign(is_nps=False), srv.assign(is_nps=True)], ignore_index=True)
    both = both[both["customer_id"].isin(rows)]
    return Feedback(
        row=rows.get_indexer(both["customer_id"]),
        is_nps=both["is_nps"].to_numpy(bool),
        score=both["score"].to_numpy(float),
        late=both["late"].to_numpy(float),
        late_days=both["late_days"].to_numpy(float),
        returned=both["ret"].to_numpy(float),
    )


def oracle_scores(
    hist: pd.DataFrame,
    feedback: Feedback,
    truth: pd.DataFrame,
    config: SimulatorConfig,
    season: np.ndarray,
) -> dict[str, pd.DataFrame]:
    """P(alive), churn probability and expected spend of each oracle, by customer_id."""
    tr = truth.loc[hist.index]
    lam, p, q = (tr[c].to_numpy(float) for c in ("lambda", "p_dropout", "p_dropout_effective"))
    d = last_order_dropout(config, p, hist["last_late"], hist["last_cancelled"].astype(bool))
    since = hist["since_last"].to_numpy()
    alive = {
        "trait oracle (q)": p_alive(lam, q, since),
        "trait oracle (full)": p_alive(
            lam, d, since, hist["carts_after"].to_numpy(), *cart_rates(config, lam)
        ),
        "latent oracle": tr["alive_at_end"].to_numpy(float),
    }
    value = kept_value_factor(config)
    out = {}
    bh = BuyerHistory(**{k: hist[k].to_numpy() for k in hist})
    pop = population_oracle(config, bh, season, feedback)
    out["population oracle"] = pd.DataFrame(
        {"p_alive": pop["p_alive"], "churn": pop["p_no_order"], "spend": pop["expected_spend"]},
        hist.index,
    )
    for name, pa in alive.items():
        churn = p_no_order(pa, lam, p, config.cancel_rate, CHURN_HORIZON)
        spend = expected_spend(pa, lam, q, tr["spend_mean"].to_numpy(), season, value)
        out[name] = pd.DataFrame({"p_alive": pa, "churn": churn, "spend": spend}, hist.index)
    # Cross-check against the ground truth's expected spend (which counts returned orders).
    truth_spend = tr["expected_spend_365"].to_numpy() * value / (1.0 - config.cancel_rate)
    out["latent oracle"]["truth_spend"] = truth_spend
    return out


def churn_table(y: pd.Series, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """ROC AUC, ECE and Brier of each score; ``gap_*``: the reference's AUC minus the row's."""
    rows = []
    for name, s in scores.items():
        prob = name != "recency days"
        row = {"score": name, "roc_auc": roc_auc(y, s)}
        row["ece"] = expected_calibration_error(y, s) if prob else np.nan
        row["brier"] = brier_score(y, s) if prob else np.nan
        rows.append(row)
    table = pd.DataFrame(rows).set_index("score")
    for ref, short in REFS.items():
        table[f"gap_{short}"] = table.loc[ref, "roc_auc"] - table["roc_auc"]
    return table


def clv_table(result: dict) -> pd.DataFrame:
    """Normalized Gini, calibration and aggregate error; ``gap_*``: reference Gini minus row's."""
    metrics = {"GBM": result["gbm"], "BTYD (BG/NBD + GG)": result["btyd"], **result["extra"]}
    cols = ["gini", "decile_calibration_error", "aggregate_error"]
    table = pd.DataFrame({n: {c: m[c] for c in cols} for n, m in metrics.items()}).T
    for ref, short in REFS.items():
        table[f"gap_{short}"] = table.loc[ref, "gini"] - table["gini"]
    return table.rename_axis("score")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--days", type=int, default=730, help="history days before the cutoff")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    clock = {"start": time.perf_counter()}

    data, truth, config, season = simulate(args.customers, args.days, args.seed)
    clock["simulate"] = time.perf_counter()
    t_end = pd.Timestamp(START) + args.days * DAY
    cutoff = t_end - pd.Timedelta(microseconds=1)  # the instant the last history day ends
    known = data.as_of(cutoff)

    model = ChurnModel(horizon_days=CHURN_HORIZON, n_threads=1).fit(known, cutoff)
    X = build_features(known, cutoff, CHURN_HORIZON)
    prob = model.predict_proba(known, cutoff).set_index("customer_id")["churn_probability"]
    y = churn_labels(data, cutoff, CHURN_HORIZON)  # judged by the versions known at the end
    clock["churn model"] = time.perf_counter()

    fates = order_fates(known, cutoff, season)
    hist = observed_history(known, cutoff, fates, season).loc[y.index]
    feedback = observed_feedback(known, cutoff, fates, hist.index, config)
    after = season[args.days : args.days + FUTURE_DAYS]
    oracles = oracle_scores(hist, feedback, truth, config, after)
    clock["oracles"] = time.perf_counter()
    churn_scores = {
        "churn model": prob.reindex(y.index).to_numpy(),
        "recency days": X.loc[y.index, "recency_days"].to_numpy(),
        "BTYD P(no purchase 90d)": X.loc[y.index, "btyd_p_no_purchase"].to_numpy(),
        **{name: o["churn"].to_numpy() for name, o in oracles.items()},
    }
    churn = churn_table(y, churn_scores)

    extra = {name: o["spend"] for name, o in oracles.items()}
    result = compare_clv_models(data, cutoff + FUTURE_DAYS * DAY, FUTURE_DAYS, extra_scores=extra)
    clv = clv_table(result)
    clock["clv models"] = time.perf_counter()

    latent = oracles["latent oracle"]
    check = np.max(np.abs(latent["spend"] - latent["truth_spend"]) / (latent["truth_spend"] + 1))
    pd.set_option("display.width", 200)
    alive_share = truth.loc[y.index, "alive_at_end"].mean()
    print(
        f"simulated {config.customers} customers over {config.n_days} days (seed {args.seed}); "
        f"cutoff E = {t_end.date()} after {args.days} days, {len(truth)} signed up by E"
    )
    print(
        f"rows: {len(y)} customers with a non-cancelled order by E; churn rate (no order in "
        f"{CHURN_HORIZON} d) {y.mean():.3f}; alive at E {alive_share:.3f}; "
        f"CLV holdout rows {result['n_holdout']}"
    )
    print(f"latent-oracle spend vs ground truth expected_spend_365: max rel. diff {check:.1e}\n")
    print(f"CHURN (label: no order in the {CHURN_HORIZON} days after E)")
    print(churn.to_string(float_format=lambda v: f"{v:.4f}"), "\n")
    print(f"CLV (actual: spend in the {FUTURE_DAYS} days after E; normalized Gini)")
    print(clv.to_string(float_format=lambda v: f"{v:.4f}"), "\n")
    names = list(clock)
    phases = ", ".join(
        f"{b} {clock[b] - clock[a]:.0f} s" for a, b in zip(names[:-1], names[1:], strict=True)
    )
    total = clock[names[-1]] - clock["start"]
    print(f"runtime: {phases}; total {total:.0f} s (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
