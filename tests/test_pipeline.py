"""The whole Dagster graph materialised in-process on a small simulated landing zone:
a backfill of a range in one run, then a nightly increment, then a re-run of that day."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from conftest import PIPELINE_END, PIPELINE_START

from ml import registry
from orchestration import pipeline
from simulator.config import SimulatorConfig
from simulator.writer import run as simulate

LANDING = Path(os.environ["LIFECYCLE_LANDING_DIR"])
WAREHOUSE = os.environ["LIFECYCLE_WAREHOUSE"]
LAST = dt.date.fromisoformat(PIPELINE_END)
MATERIALIZED = dg.DagsterEventType.ASSET_MATERIALIZATION


@pytest.fixture(scope="module")
def nightly_job():
    config = SimulatorConfig(
        customers=800,
        start=dt.date.fromisoformat(PIPELINE_START),
        end=LAST,
        seed=7,
    )
    simulate(config, LANDING, LANDING.parent / "ground_truth", fmt="csv", clean=True)
    from orchestration.definitions import defs

    return defs().resolve_job_def("nightly")


def run_range(job, instance, first: dt.date, last: dt.date) -> dg.ExecuteInProcessResult:
    return pipeline.run_range(job, instance, first, last, raise_on_error=True)  # as make run


def landed_rows(source: str, last: dt.date) -> int:
    files = sorted((LANDING / source).glob("*.csv"))
    return sum(len(pd.read_csv(f)) for f in files if dt.date.fromisoformat(f.stem) <= last)


def query(sql: str):
    with duckdb.connect(WAREHOUSE, read_only=True) as con:
        return con.execute(sql).fetchall()


def test_backfill_then_nightly_then_rerun(nightly_job, capfd):
    start = dt.date.fromisoformat(PIPELINE_START)
    with dg.instance_for_test() as instance:
        backfill = run_range(nightly_job, instance, start, LAST - dt.timedelta(days=1))
        assert backfill.success
        # the console gets INFO and up (LIFECYCLE_LOG_LEVEL); the events are in the run's log
        console = capfd.readouterr().err
        assert " - DEBUG - " not in console and "ASSET_MATERIALIZATION" not in console
        assert len(instance.all_logs(backfill.run_id, of_type=MATERIALIZED)) > 100
        # one run materialised every asset over the whole range
        runs = instance.get_runs()
        assert len(runs) == 1
        orders_before = query("select count(*) from raw.orders")[0][0]
        assert orders_before == landed_rows("orders", LAST - dt.timedelta(days=1))

        nightly = run_range(nightly_job, instance, LAST, LAST)
        assert nightly.success
        gate_checks = [
            e for e in nightly.get_asset_check_evaluations() if e.check_name == "churn_quality_gate"
        ]
        # models are retrained weekly (LIFECYCLE_RETRAIN_EVERY_DAYS): the backfill trained
        # them, the next night only scores with the champion and the gate check says so
        assert len(gate_checks) == 1 and gate_checks[0].passed
        assert gate_checks[0].description.startswith("No candidate tonight")
        # ...so it reads each order as known tonight only, not every version
        churn = [
            m.metadata
            for m in nightly.asset_materializations_for_node("ml_scores")
            if m.asset_key == dg.AssetKey(["ml", "churn_scores"])
        ]
        assert churn[0]["order_versions_read"].text == "as known at 1 cutoff(s)"
        versions = query("select count(*), count(distinct order_id) from staging.stg_order_events")
        assert churn[0]["order_rows_read"].value == versions[0][1] < versions[0][0]
        for source in ("orders", "customers", "reviews", "surveys", "checkouts"):
            loaded = query(f"select count(*) from raw.{source}")[0][0]
            rejected = query(f"select count(*) from raw.{source}_rejected")[0][0]
            assert loaded + rejected == landed_rows(source, LAST), source

        # re-running the night replaces it: nothing is duplicated
        again = run_range(nightly_job, instance, LAST, LAST)
        assert again.success
        assert query("select count(*) from raw.orders")[0][0] == landed_rows("orders", LAST)

        key = dg.AssetKey(["raw", "orders"])
        materialized = instance.get_materialized_partitions(key)
        assert len(materialized) == (LAST - start).days + 1

    # every known customer has exactly one segment as of the last day
    customers = query("select count(*) from marts.dim_customers")[0][0]
    segments = query(
        "select count(*), count(distinct customer_id), min(as_of_date), max(as_of_date) "
        "from marts.customer_segments"
    )[0]
    assert segments[0] == segments[1] == customers > 0
    assert segments[2] == segments[3] == LAST
    scored = query(
        "select count(*), min(churn_probability), max(churn_probability) "
        "from ml.churn_scores where as_of_date = date '" + LAST.isoformat() + "'"
    )[0]
    assert scored[0] > 0 and 0 <= scored[1] <= scored[2] <= 1
    # the champion that scored is in the registry, with its card; every run is recorded
    champion = registry.champion(os.environ["LIFECYCLE_MODEL_DIR"], "churn")
    assert champion is not None and champion.card_path.is_file()
    versions = query(
        "select distinct model_version from ml.churn_scores where as_of_date = date '"
        + LAST.isoformat()
        + "'"
    )
    assert versions == [(champion.version,)]
    runs = query(
        "select count(*), count(*) filter (where is_champion) from ml.model_runs "
        "where model_kind = 'churn'"
    )[0]
    assert runs == (1, 1)  # trained once (the backfill), then scored by that champion
    backtest_columns = query(
        "select column_name from information_schema.columns where table_name = 'churn_backtest'"
    )
    assert {"as_of_date", "roc_auc", "ece"} <= {c for (c,) in backtest_columns}
    clv = query("select count(*), min(clv) from ml.clv_predictions")[0]
    assert clv[0] > 0 and clv[1] >= 0
    # PII never reaches the marts
    columns = query(
        "select column_name from information_schema.columns where table_schema = 'marts'"
    )
    assert not {c for (c,) in columns} & {"email", "body", "title", "comment"}
