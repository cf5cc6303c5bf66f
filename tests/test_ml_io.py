"""Reading the model inputs from a DuckDB warehouse: every order version (training) or the
versions known at given cutoffs (a night that only scores), with the same results."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from test_features import simulate_lifecycle

from ml.data import SCHEMAS, HistoryNotLoaded, LifecycleData
from ml.features import build_features, churn_labels
from orchestration.ml_io import VIEWS, as_of_cutoff, backtest_new_dates, load_lifecycle_data
from orchestration.warehouse import ensure_ml_tables

HORIZON = 90


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """A DuckDB file whose staging tables hold a simulated lifecycle (with CDC versions),
    plus a tie: two versions of one order known at the same instant."""
    data, as_of = simulate_lifecycle(n_customers=600, n_days=400, seed=3)
    orders = data.orders[list(SCHEMAS["orders"])].copy()
    last = orders["updated_at"] == orders.groupby("order_id")["updated_at"].transform("max")
    tie = orders[last & (orders["status"] == "delivered")].iloc[[0]].assign(status="returned")
    orders = pd.concat([orders, tie], ignore_index=True)
    orders.insert(0, "order_event_id", [f"E{i:07d}" for i in range(len(orders))])
    path = tmp_path_factory.mktemp("ml_io") / "lifecycle.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema staging")
        frames = {"orders": orders}
        frames |= {t: getattr(data, t)[list(SCHEMAS[t])] for t in SCHEMAS if t != "orders"}
        for table, frame in frames.items():
            con.register("frame", frame)
            con.execute(f'create table staging."{VIEWS[table]}" as select * from frame')
            con.unregister("frame")
    day = (as_of - pd.Timedelta(days=1)).date()
    return path, day, tie["order_id"].iloc[0]


def test_orders_at_cutoffs_give_the_same_snapshots_features_and_labels(warehouse):
    path, day, tied = warehouse
    now = as_of_cutoff(day)
    old = as_of_cutoff(day - pd.Timedelta(days=HORIZON + 10))
    with duckdb.connect(str(path), read_only=True) as con:
        full = load_lifecycle_data(con, day)
        thin = load_lifecycle_data(con, day, order_cutoffs=[old, now])
    assert full.order_cutoffs is None and thin.order_cutoffs == (old, now)
    assert len(thin.orders) < 0.6 * len(full.orders)  # placed/shipped/delivered -> one row
    for cutoff in (old, now):
        key = ["order_id"]
        pd.testing.assert_frame_equal(
            thin.snapshot(cutoff).sort_values(key, ignore_index=True),
            full.snapshot(cutoff).sort_values(key, ignore_index=True),
        )
        pd.testing.assert_frame_equal(
            build_features(thin, cutoff, HORIZON), build_features(full, cutoff, HORIZON)
        )
    pd.testing.assert_series_equal(
        churn_labels(thin, old, HORIZON, as_of=now), churn_labels(full, old, HORIZON, as_of=now)
    )
    snap = thin.snapshot(now).set_index("order_id")
    assert snap.loc[tied, "status"] == "returned"  # the later stage wins a tie on updated_at
    for table in ("reviews", "surveys", "checkouts", "customers"):
        assert len(getattr(thin, table)) == len(getattr(full, table))


def test_other_cutoffs_need_the_full_history(warehouse):
    path, day, _ = warehouse
    now = as_of_cutoff(day)
    with duckdb.connect(str(path), read_only=True) as con:
        thin = load_lifecycle_data(con, day, order_cutoffs=[now])
        with pytest.raises(ValueError, match="before"):
            load_lifecycle_data(con, day, order_cutoffs=[now + pd.Timedelta(days=1)])
    earlier = now - pd.Timedelta(days=30)
    with pytest.raises(HistoryNotLoaded, match="every order version"):
        thin.snapshot(earlier)
    with pytest.raises(HistoryNotLoaded):
        build_features(thin, earlier, HORIZON)
    with pytest.raises(HistoryNotLoaded):
        thin.as_of(earlier)
    assert thin.as_of(now).order_cutoffs == (now,)
    assert thin.sample_customers(50).order_cutoffs == (now,)
    assert thin.snapshot(now) is thin.snapshot(now)  # cached


def test_from_arrow_equals_the_pandas_constructor(warehouse):
    path, day, _ = warehouse
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {
            t: con.execute(f'select * exclude (order_event_id) from staging."{v}"').arrow()
            if t == "orders"
            else con.execute(f'select * from staging."{v}"').arrow()
            for t, v in VIEWS.items()
        }
    tables = {t: pa.table(tb) for t, tb in tables.items()}
    from_arrow = LifecycleData.from_arrow(tables)
    from_pandas = LifecycleData(**{t: tb.to_pandas() for t, tb in tables.items()})
    pd.testing.assert_index_equal(from_arrow.customer_ids, from_pandas.customer_ids)
    for table in SCHEMAS:
        pd.testing.assert_frame_equal(
            getattr(from_arrow, table), getattr(from_pandas, table), check_categorical=False
        )


def test_backtest_new_dates_stores_each_matured_date_once(warehouse, tmp_path):
    path, day, _ = warehouse
    copy = tmp_path / "lifecycle.duckdb"
    shutil.copyfile(path, copy)
    now = as_of_cutoff(day)
    matured = [day - dt.timedelta(days=HORIZON + k) for k in (30, 10)]
    pending = day - dt.timedelta(days=HORIZON - 5)  # its horizon has not passed
    rng = np.random.default_rng(0)
    with duckdb.connect(str(copy)) as con:
        ensure_ml_tables(con)
        data = load_lifecycle_data(con, day)
        for d in [*matured, pending]:
            ids = build_features(data, as_of_cutoff(d), HORIZON).index
            scores = pd.DataFrame(
                {"customer_id": ids, "as_of_date": d, "churn_probability": rng.random(len(ids))}
            ).assign(model_version="v1", scored_at=now)
            con.register("s", scores)
            con.execute("insert into ml.churn_scores by name select * from s")
        first = backtest_new_dates(con, data, now, HORIZON)
        again = backtest_new_dates(con, data, now, HORIZON)
        stored = con.execute("select as_of_date, n from ml.churn_backtest").df()
    assert (first, again) == (2, 0)
    assert sorted(stored["as_of_date"].dt.date) == matured  # not the pending date
    assert (stored["n"] > 100).all()
