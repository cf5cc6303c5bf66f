"""Nightly model operations: the retrain cadence, training on a customer sample, and
scoring with the registered champion on the nights without training."""

from __future__ import annotations

import dataclasses

import duckdb
import pandas as pd
import pytest
from test_features import simulate_lifecycle

from ml import registry
from ml.backtest import day_cutoff
from orchestration.ml_io import MAX_ORDER_CUTOFFS, order_cutoffs
from orchestration.model_ops import (
    CHURN,
    CLV,
    retrain_reason,
    train_and_score_churn,
    train_and_score_clv,
    trains_tonight,
)
from orchestration.settings import load_settings
from orchestration.warehouse import ensure_ml_tables

HORIZON = 90


@pytest.fixture(scope="module")
def lifecycle():
    return simulate_lifecycle(n_customers=700, n_days=520, seed=5)


def test_sample_customers_is_stable_complete_and_bounded(lifecycle):
    data, _ = lifecycle
    sample = data.sample_customers(200)
    ids = set(sample.customers["customer_id"]) | set(sample.orders["customer_id"])
    assert len(ids) == 200
    # every row of a sampled customer is kept, no row of another one
    for table in ("orders", "reviews", "surveys", "checkouts", "customers"):
        full, part = getattr(data, table), getattr(sample, table)
        assert len(part) == full["customer_id"].isin(ids).sum(), table
        assert set(part["customer_id"]) <= ids
    # the same customers whatever the row order; another seed draws other customers
    shuffled = type(data)(
        orders=data.orders.sample(frac=1, random_state=1), customers=data.customers
    )
    assert set(shuffled.sample_customers(200).orders["customer_id"]) == set(
        sample.orders["customer_id"]
    )
    other = data.sample_customers(200, seed=1)
    assert set(other.orders["customer_id"]) != set(sample.orders["customer_id"])
    assert data.sample_customers(10**6) is data and data.sample_customers(None) is data


def test_retrain_reason_follows_the_champion_age(lifecycle, tmp_path):
    data, as_of = lifecycle
    cutoff = pd.Timestamp(as_of)
    assert retrain_reason(tmp_path, CHURN, cutoff, 7, HORIZON) == "no champion yet"
    outcome = train_and_score_churn(data, cutoff, tmp_path, HORIZON, 7)
    assert outcome.candidate is not None and outcome.retrained == "no champion yet"
    day = pd.Timedelta(days=1)
    assert retrain_reason(tmp_path, CHURN, cutoff + 6 * day, 7, HORIZON) is None
    assert "7 day(s) old" in retrain_reason(tmp_path, CHURN, cutoff + 7 * day, 7, HORIZON)
    assert "later date" in retrain_reason(tmp_path, CHURN, cutoff - day, 7, HORIZON)
    assert "horizon" in retrain_reason(tmp_path, CHURN, cutoff + day, 7, 60)
    assert retrain_reason(tmp_path, CHURN, cutoff, 0, HORIZON) is not None  # every night


def test_churn_scores_with_the_champion_between_retrains(lifecycle, tmp_path):
    data, as_of = lifecycle
    cutoff = pd.Timestamp(as_of)
    first = train_and_score_churn(data, cutoff, tmp_path, HORIZON, 7, max_train_customers=300)
    assert first.promoted and first.candidate.meta["params"]["n_train_customers"] <= 300
    later = cutoff + pd.Timedelta(days=2)
    second = train_and_score_churn(data, later, tmp_path, HORIZON, 7)
    assert second.candidate is None and second.gate is None and not second.promoted
    assert second.champion.version == first.champion.version
    assert len(registry.list_versions(tmp_path, CHURN)) == 1
    # everyone with orders is scored (not only the training sample), and drift is measured
    # against the features kept with the model
    assert len(second.scores) == len(first.scores) > 300
    assert set(second.drift["status"]) <= {"ok", "warn", "alert", "missing"}
    assert len(second.drift) > 10
    # a champion that cannot be loaded any more (damaged, or saved by an incompatible
    # release) makes the night retrain instead of failing
    first.champion.model_path.write_bytes(b"not a model")
    third = train_and_score_churn(data, later, tmp_path, HORIZON, 7)
    assert third.candidate is not None and "could not score" in third.retrained
    assert third.promoted and len(third.scores) == len(first.scores)


def test_clv_scores_with_the_registered_models_between_retrains(lifecycle, tmp_path):
    data, as_of = lifecycle
    cutoff = pd.Timestamp(as_of)
    first = train_and_score_clv(data, cutoff, tmp_path, retrain_every_days=7)
    assert first.retrained == "no champion yet"
    second = train_and_score_clv(data, cutoff, tmp_path, retrain_every_days=7)
    assert second.retrained is None and second.version.version == first.version.version
    assert second.scoring.winner == first.scoring.winner
    assert first.version.version in second.scoring.comparison["reason"]
    # the same models on the same data give the same scores
    a = first.scoring.scores.set_index("customer_id").sort_index()
    b = second.scoring.scores.set_index("customer_id").sort_index()
    pd.testing.assert_frame_equal(a, b)
    assert len(registry.list_versions(tmp_path, CLV)) == 1


def test_a_scoring_night_reads_orders_at_its_cutoffs_only(lifecycle, tmp_path):
    """Every order version when a model trains; otherwise the scoring cutoff plus the score
    dates waiting for a backtest, and every version again beyond MAX_ORDER_CUTOFFS."""
    data, as_of = lifecycle
    cutoff = pd.Timestamp(as_of)
    settings = dataclasses.replace(
        load_settings(), model_dir=tmp_path, retrain_every_days=7, churn_horizon_days=HORIZON
    )
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    ensure_ml_tables(con)
    assert order_cutoffs(con, cutoff, settings) is None  # no champion yet: training
    train_and_score_churn(data, cutoff, tmp_path, HORIZON, 7, max_train_customers=300)
    assert trains_tonight(tmp_path, cutoff, 7, HORIZON)  # the CLV models are still missing
    train_and_score_clv(data, cutoff, tmp_path, retrain_every_days=7, max_train_customers=300)
    night = cutoff + pd.Timedelta(days=1)
    assert order_cutoffs(con, night, settings) == [night]

    def score_date(days_before: int) -> None:
        day = (night - pd.Timedelta(days=days_before)).date()
        con.execute(
            "insert into ml.churn_scores (customer_id, as_of_date) values ('C1', $d)", {"d": day}
        )

    score_date(HORIZON - 1)  # not matured: not read
    matured = [HORIZON + k for k in range(1, MAX_ORDER_CUTOFFS)]
    for days in matured:
        score_date(days)
    expected = sorted(day_cutoff((night - pd.Timedelta(days=d)).date()) for d in matured)
    assert order_cutoffs(con, night, settings) == [night, *expected]
    score_date(HORIZON + MAX_ORDER_CUTOFFS)  # one more to backtest: too many passes
    assert order_cutoffs(con, night, settings) is None
    backtested = (night - pd.Timedelta(days=HORIZON + 1)).date()
    con.execute("insert into ml.churn_backtest (as_of_date) values ($d)", {"d": backtested})
    assert len(order_cutoffs(con, night, settings)) == MAX_ORDER_CUTOFFS
    assert trains_tonight(tmp_path, cutoff + pd.Timedelta(days=7), 7, HORIZON)  # weekly
