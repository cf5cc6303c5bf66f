"""Tests of the simulator: determinism, landing contract, CDC, ground truth, behaviour."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from orchestration.contract import ORDER_STATUSES, SOURCES
from simulator import Simulation, SimulatorConfig, ground_truth, run
from simulator.__main__ import main
from simulator.truth import expected_orders_curve

START, END = dt.date(2024, 1, 1), dt.date(2024, 6, 29)  # 181 days
CONFIG = SimulatorConfig(customers=800, start=START, end=END, seed=11)
SMALL = SimulatorConfig(customers=300, start=START, end=START + dt.timedelta(days=59), seed=5)
TS_COLUMNS = {"customers": "signed_up_at", "orders": "updated_at", "reviews": "created_at",
              "surveys": "responded_at", "checkouts": "started_at"}  # fmt: skip
TRUTH_COLUMNS = {
    "customer_id", "lambda", "p_dropout", "p_dropout_effective", "first_order_rate",
    "spend_shape", "spend_nu", "spend_mean", "is_prospect", "alive_at_end", "dropout_date",
    "orders_placed", "expected_orders_90", "expected_orders_365", "expected_spend_90",
    "expected_spend_365", "p_no_order_90",
}  # fmt: skip


def _landing(base: Path, config: SimulatorConfig = CONFIG, fmt: str = "csv") -> Path:
    run(config, base / "landing", fmt=fmt)
    return base / "landing"


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _landing(tmp_path_factory.mktemp("a"))


@pytest.fixture(scope="module")
def small_zone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _landing(tmp_path_factory.mktemp("small"), SMALL)


def read_source(landing: Path, source: str, fmt: str = "csv") -> pd.DataFrame:
    """All files of a source, every value as text ('' = null), plus the file's date."""
    frames = []
    for f in sorted((landing / source).glob(f"*.{fmt}")):
        if fmt == "csv":
            df = pd.read_csv(f, dtype=str, keep_default_na=False)
        elif fmt == "parquet":
            df = pd.read_parquet(f)
        else:
            if f.stat().st_size == 0:  # an empty JSONL day carries no columns
                continue
            df = pd.read_json(f, lines=True, dtype=False)
        frames.append(df.assign(_file=f.stem))
    return pd.concat(frames, ignore_index=True)


def rule_violations(landing: Path, source: str) -> int:
    """Rows of a source breaking a contract rule, a required column or a type (DuckDB casts)."""
    src = SOURCES[source]
    typed = ", ".join(
        f"try_cast(nullif({c.name}, '') as {c.sql_type}) as {c.name}" for c in src.columns
    )
    rel = f"read_csv('{landing}/{source}/*.csv', all_varchar=true, header=true)"
    checks = [r.violation_sql for r in src.rules]
    checks += [f"{c} is null" for c in src.required_columns]
    checks += [f"(raw_{c.name} <> '' and {c.name} is null)" for c in src.columns]
    raw = ", ".join(f"{c.name} as raw_{c.name}" for c in src.columns)
    sql = f"select count(*) from (select {raw}, {typed} from {rel}) where {' or '.join(checks)}"
    return duckdb.sql(sql).fetchone()[0]


def test_same_seed_same_bytes_other_seed_differs(zone: Path, tmp_path: Path) -> None:
    again = _landing(tmp_path / "same")
    files = sorted(p.relative_to(zone) for p in zone.rglob("*.csv"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.csv"))
    assert all((zone / f).read_bytes() == (again / f).read_bytes() for f in files)
    truth_a = pd.read_parquet(zone.parent / "ground_truth" / "customers.parquet")
    pd.testing.assert_frame_equal(
        truth_a, pd.read_parquet(again.parent / "ground_truth/customers.parquet")
    )
    other = _landing(tmp_path / "other", SimulatorConfig(**{**CONFIG.__dict__, "seed": 12}))
    assert (zone / "orders/2024-03-01.csv").read_bytes() != (
        other / "orders/2024-03-01.csv"
    ).read_bytes()


def test_layout_one_file_per_source_per_day(zone: Path) -> None:
    days = {(START + dt.timedelta(days=i)).isoformat() for i in range(CONFIG.n_days)}
    assert sorted(p.name for p in zone.iterdir()) == sorted(SOURCES)
    for source in SOURCES:
        names = [p.name for p in (zone / source).iterdir()]
        assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}\.csv", n) for n in names)
        assert {n[:10] for n in names} == days and len(names) == len(days)
    truth = zone.parent / "ground_truth"
    assert (truth / "customers.parquet").is_file() and (truth / "summary.json").is_file()
    assert not list(zone.rglob("*.parquet")) and not list(zone.rglob("*.json"))


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_contract_conformance(zone: Path, source: str) -> None:
    df = read_source(zone, source)
    assert len(df) > 0
    assert list(df.columns[:-1]) == SOURCES[source].column_names
    assert rule_violations(zone, source) == 0
    for col in SOURCES[source].required_columns:
        assert (df[col] != "").all(), col
    # every record lands in the file of the day it was created or changed
    assert (df[TS_COLUMNS[source]].str[:10] == df["_file"]).all()
    assert df[TS_COLUMNS[source]].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    key = SOURCES[source].key
    assert not df.duplicated([key, "_file"]).any()
    if source != "orders":
        assert df[key].is_unique


def test_orders_values(zone: Path) -> None:
    o = read_source(zone, "orders")
    assert set(o["status"]) == set(ORDER_STATUSES)
    for col in ("order_total", "discount_total", "shipping_total"):
        assert o[col].str.fullmatch(r"\d+\.\d\d").all(), col
    assert (o["currency"] == "EUR").all() and set(o["channel"]) == {"web", "app"}
    assert (o["item_count"].astype(int) >= 1).all()
    promised = pd.to_datetime(o["promised_delivery_date"])
    lead = (promised - pd.to_datetime(o["ordered_at"].str[:10])).dt.days
    assert lead.between(3, 7).all()
    has_delivery = o["status"].isin(["delivered", "returned"])
    assert ((o["delivered_at"] != "") == has_delivery).all()
    r, s = read_source(zone, "reviews"), read_source(zone, "surveys")
    assert (
        r["rating"].astype(int).between(1, 5).all() and s["score"].astype(int).between(0, 10).all()
    )
    assert set(r["order_id"]) <= set(o["order_id"]) and (s["survey"] == "nps_post_purchase").all()
    c = read_source(zone, "checkouts")
    completed = c[c["completed_order_id"] != ""]
    assert set(completed["completed_order_id"]) <= set(o["order_id"])
    assert 0.2 < (c["completed_order_id"] == "").mean() < 0.8  # some carts are abandoned
    customers = read_source(zone, "customers")
    assert len(customers) == CONFIG.customers
    assert set(o["customer_id"]) | set(c["customer_id"]) <= set(customers["customer_id"])


def test_cdc_versions_progress(zone: Path) -> None:
    o = read_source(zone, "orders").sort_values(["order_id", "updated_at"])
    allowed = {("placed", "shipped"), ("placed", "cancelled"), ("shipped", "delivered"),
               ("delivered", "returned")}  # fmt: skip
    versions = o.groupby("order_id")
    assert (versions["status"].first() == "placed").all()
    assert (versions["_file"].first() == versions["ordered_at"].first().str[:10]).all()
    prev = o.groupby("order_id")[["status", "updated_at", "_file"]].shift()
    step = prev["status"].notna()
    assert set(zip(prev["status"][step], o["status"][step], strict=True)) <= allowed
    assert (o["updated_at"][step] > prev["updated_at"][step]).all()
    assert (o["_file"][step] > prev["_file"][step]).all()
    n_versions = versions.size()
    assert (n_versions >= 3).sum() > 100 and n_versions.max() == 4
    static = ["customer_id", "ordered_at", "order_total", "promised_delivery_date"]
    assert (versions[static].nunique() == 1).all().all()
    latest = versions["status"].last().value_counts(normalize=True)
    assert 0.01 < latest["cancelled"] < 0.06 and 0.02 < latest["returned"] < 0.09


def test_ground_truth_beside_landing_and_consistent(zone: Path) -> None:
    truth = pd.read_parquet(zone.parent / "ground_truth" / "customers.parquet")
    assert set(truth.columns) >= TRUTH_COLUMNS
    assert len(truth) == CONFIG.customers and truth["customer_id"].is_unique
    dead = ~truth["alive_at_end"]
    assert dead.any() and truth["alive_at_end"].any()
    assert (truth.loc[dead, ["expected_orders_90", "expected_spend_365"]] == 0).all().all()
    assert (truth.loc[dead, "p_no_order_90"] == 1).all()
    alive = truth[truth["alive_at_end"]]
    assert (alive["expected_orders_90"] > 0).all() and (alive["p_no_order_90"] < 1).all()
    assert (truth["expected_orders_365"] >= truth["expected_orders_90"]).all()
    assert truth["dropout_date"].notna().sum() == (dead & ~truth["is_prospect"]).sum()
    assert 0.15 < truth["is_prospect"].mean() < 0.3
    orders = read_source(zone, "orders")
    placed = orders[orders["status"] == "placed"].groupby("customer_id").size()
    counts = placed.reindex(truth["customer_id"], fill_value=0).to_numpy()
    np.testing.assert_array_equal(counts, truth["orders_placed"].to_numpy())
    assert (counts[truth["is_prospect"].to_numpy()] == 0).all()


def test_truth_predicts_the_realised_future() -> None:
    """Truth as of a cut vs what the simulation then produces (the window has Black Friday)."""
    start = dt.date(2024, 6, 1)
    config = SimulatorConfig(
        customers=2000, start=start, end=start + dt.timedelta(days=249), seed=3
    )
    sim, cut, later = Simulation(config), 150, []
    for i, (_, frames) in enumerate(sim.days()):
        if i + 1 == cut:
            truth = ground_truth(sim)
        elif i >= cut:
            later.append(frames["orders"])
    window = [(start + dt.timedelta(days=d)).isoformat() for d in (cut, cut + 90)]
    o = pd.concat(later).sort_values("updated_at")
    o = o[(o["ordered_at"] >= window[0]) & (o["ordered_at"] < window[1])]
    o = o[o["customer_id"].isin(truth["customer_id"])]  # not those who sign up later
    latest = o.groupby("order_id").last()
    spend = latest[latest["status"] != "cancelled"].groupby("customer_id")["order_total"].sum()
    realised = latest.groupby("customer_id").size().reindex(truth["customer_id"], fill_value=0)
    realised = realised.to_numpy()
    expected = truth["expected_orders_90"].sum()
    assert abs(realised.sum() - expected) < 0.1 * expected
    assert abs(spend.sum() - truth["expected_spend_90"].sum()) < 0.15 * spend.sum()
    assert realised[~truth["alive_at_end"].to_numpy()].sum() == 0
    buyers = (truth["orders_placed"] > 0).to_numpy()
    auc = roc_auc_score(realised[buyers] == 0, truth["p_no_order_90"][buyers])
    assert auc > 0.8


def test_expected_orders_formula_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    lam, q, mu, horizon, n = 0.05, 0.25, 0.1, 60.0, 200_000
    # awaiting the first order: exponential wait, then Poisson orders until a Geometric dropout
    first = rng.exponential(1 / mu, n)
    orders = np.zeros(n)
    t, alive = first.copy(), first < horizon
    while alive.any():
        orders += alive
        alive &= rng.random(n) >= q
        t = t + rng.exponential(1 / lam, n)
        alive &= t < horizon
    curve = expected_orders_curve(
        np.array([2, 1, 0]), np.full(3, lam), np.full(3, q), np.full(3, mu), np.array([horizon])
    )[:, 0]
    assert curve[0] == pytest.approx(orders.mean(), rel=0.02)
    assert curve[1] == pytest.approx((1 - np.exp(-lam * q * horizon)) / q)
    assert curve[2] == 0


def test_late_deliveries_hurt_ratings_and_scores(zone: Path) -> None:
    o = read_source(zone, "orders")
    done = o[o["status"] == "delivered"]
    late = pd.to_datetime(done["delivered_at"].str[:10]) > pd.to_datetime(
        done["promised_delivery_date"]
    )
    assert 0.05 < late.mean() < 0.16
    is_late = dict(zip(done["order_id"], late, strict=True))
    r = read_source(zone, "reviews")
    r["late"] = r["order_id"].map(is_late)
    by_late = r.groupby("late")["rating"].apply(lambda s: s.astype(int).mean())
    assert by_late[True] < by_late[False] - 0.5


def test_late_delivery_raises_dropout(zone: Path) -> None:
    """The order after which a customer leaves is more often a late one."""
    o = read_source(zone, "orders").sort_values("updated_at").groupby("order_id").last()
    done = o[o["status"].isin(["delivered", "returned"])].copy()
    done["late"] = done["delivered_at"].str[:10] > done["promised_delivery_date"]
    truth = pd.read_parquet(zone.parent / "ground_truth" / "customers.parquet")
    left = truth.set_index("customer_id")["dropout_date"]
    last = o.reset_index().sort_values("ordered_at").groupby("customer_id")["order_id"].last()
    done["dropout"] = done.index.isin(last) & (
        done["customer_id"].map(left) == done["ordered_at"].str[:10]
    )
    rates = done.groupby("late")["dropout"].mean()
    assert rates[True] > 1.4 * rates[False]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_other_formats_hold_the_same_records(small_zone: Path, tmp_path: Path, fmt: str) -> None:
    other = _landing(tmp_path, SMALL, fmt=fmt)
    assert len(list((other / "orders").glob(f"*.{fmt}"))) == SMALL.n_days
    for source in ("orders", "reviews", "checkouts"):
        csv, alt = read_source(small_zone, source), read_source(other, source, fmt)
        assert list(alt.columns) == list(csv.columns)
        assert alt[SOURCES[source].key].tolist() == csv[SOURCES[source].key].tolist()
    o = read_source(other, "orders", fmt)
    ts = pd.to_datetime(o["updated_at"], format="ISO8601", utc=fmt == "jsonl")
    csv_ts = pd.to_datetime(read_source(small_zone, "orders")["updated_at"], utc=fmt == "jsonl")
    assert (ts.dt.strftime("%F %T").to_numpy() == csv_ts.dt.strftime("%F %T").to_numpy()).all()


def test_bad_rows_are_extra_and_invalid(small_zone: Path, tmp_path: Path) -> None:
    bad = _landing(tmp_path, SimulatorConfig(**{**SMALL.__dict__, "bad_row_rate": 0.05}))
    assert all(rule_violations(bad, s) > 0 for s in ("customers", "orders", "checkouts"))
    assert rule_violations(small_zone, "orders") == 0
    clean, dirty = read_source(small_zone, "orders"), read_source(bad, "orders")
    assert len(dirty) > len(clean)
    kept = dirty.merge(clean, how="inner").shape[0]
    assert kept == len(clean)  # every clean row is still there, unchanged


def test_cli_default_truth_dir_and_guard(tmp_path: Path) -> None:
    argv = ["--customers", "50", "--start", "2024-01-01", "--end", "2024-01-20", "--seed", "1"]
    out = tmp_path / "land"
    assert (
        main([*argv, "--out", str(out), "--format", "jsonl", "--sources", "orders,customers"]) == 0
    )
    assert (tmp_path / "ground_truth" / "customers.parquet").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["customers", "orders"]
    assert len(list((out / "customers").glob("*.jsonl"))) == 20
    first = read_source(out, "customers", "jsonl").iloc[0]
    assert re.fullmatch(r"C\d{7}", first["customer_id"]) and first["email"].endswith("@example.com")
    with pytest.raises(ValueError, match="inside the landing zone"):
        run(SimulatorConfig(customers=10), tmp_path / "land", tmp_path / "land" / "truth")
