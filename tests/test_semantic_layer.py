"""The MetricFlow semantic layer (dbt_project/models/semantic) answers like SQL on the marts.

A small landing zone is simulated, loaded by the real ingest, scored by the real ML models
(``score_models`` of test_postgres) and built with ``dbt run`` in a copy of the dbt project
(``mf`` reads ``<project>/target/semantic_manifest.json``, so the copy keeps the repository's
target folder untouched). Then the real ``mf`` CLI runs as a subprocess: ``mf validate-configs``
(semantic checks, and every metric, dimension and entity queried on the DuckDB warehouse) and
``mf query ... --csv``, whose values must equal the same aggregations written in SQL on the
marts. dbt and mf run as subprocesses: dbt-duckdb keeps the database file locked in the process
that opened it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_postgres import AS_OF, CUSTOMERS, DAYS, START, score_models  # noqa: E402

from orchestration.ingest import ensure_raw_tables, load_partitions  # noqa: E402
from orchestration.warehouse import ensure_ml_tables  # noqa: E402
from simulator.config import LANDING_SOURCES, SimulatorConfig  # noqa: E402
from simulator.writer import run as simulate  # noqa: E402

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
BIN = Path(sys.executable).parent  # dbt and mf of the same virtual environment
ACTIVE_STAGES = "('new', 'active', 'reactivated', 'at_risk')"
# lapse after half the simulated period, so that customers churn within it
DBT_VARS = {"as_of_date": AS_OF.isoformat(), "lapsed_days": DAYS // 2}


def run_cli(args: list[str], project: Path, env: dict[str, str]) -> str:
    """Run ``args`` in ``project``; fail the test with the output if it fails."""
    done = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args[:2])} failed:\n{output[-4000:]}"
    return output


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(dbt project copy, built DuckDB warehouse, environment for dbt and mf)."""
    tmp = tmp_path_factory.mktemp("semantic")
    project = tmp / "dbt_project"
    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml")
    shutil.copytree(PROJECT_DIR, project, ignore=ignore)
    config = SimulatorConfig(customers=CUSTOMERS, start=START, end=AS_OF, seed=7)
    simulate(config, tmp / "landing", truth_dir=tmp / "truth", fmt="parquet")
    path = tmp / "lifecycle.duckdb"
    with duckdb.connect(str(path)) as con:
        ensure_raw_tables(con)
        ensure_ml_tables(con)
        days = [START + dt.timedelta(days=i) for i in range(DAYS)]
        for source in LANDING_SOURCES:
            load_partitions(con, source, days, tmp / "landing")
    env = {
        **os.environ,
        "LIFECYCLE_WAREHOUSE": str(path),
        "LIFECYCLE_DBT_TARGET": "dev",
        "DBT_PROJECT_DIR": str(project),
        "DBT_PROFILES_DIR": str(project),
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    dbt_vars = ["--vars", json.dumps(DBT_VARS)]
    run_cli([str(BIN / "dbt"), "run", "--select", "staging", *dbt_vars], project, env)
    with duckdb.connect(str(path)) as con:
        score_models(con)  # ml.clv_predictions and ml.churn_scores as of AS_OF
    run_cli([str(BIN / "dbt"), "run", *dbt_vars], project, env)  # data tests: other test files
    assert (project / "target" / "semantic_manifest.json").exists()
    # mf queries the file as analysts do: through the read-only `published` target
    published = {
        **env,
        "LIFECYCLE_DBT_TARGET": "published",
        "LIFECYCLE_PUBLISHED_WAREHOUSE": str(path),
    }
    return project, path, published


def mf_query(
    warehouse: tuple[Path, Path, dict[str, str]], metrics: str, group_by: str
) -> pd.DataFrame:
    """``mf query --metrics ... --group-by ... --csv``, read back."""
    project, _, env = warehouse
    out = project / f"mf-{group_by.replace(',', '-')}.csv"
    cli = [str(BIN / "mf"), "query", "--metrics", metrics, "--group-by", group_by]
    run_cli([*cli, "--csv", str(out), "--quiet"], project, env)
    return pd.read_csv(out)


def read_sql(path: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:  # closed before the next mf call
        return con.execute(sql).df()


def assert_same(got: pd.DataFrame, expected: pd.DataFrame, key: str) -> None:
    """Same keys and, per metric column of ``expected``, the same values (nulls included)."""
    merged = got.merge(expected, on=key, how="outer", suffixes=("", "_sql"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    for column in expected.columns.drop(key):
        mf, sql = merged[column].astype(float), merged[f"{column}_sql"].astype(float)
        same = np.isclose(mf, sql, rtol=1e-9, atol=1e-9) | (mf.isna() & sql.isna())
        assert same.all(), merged.loc[~same, [key, column, f"{column}_sql"]]


def test_validate_configs(warehouse: tuple[Path, Path, dict[str, str]]) -> None:
    project, _, env = warehouse
    output = run_cli([str(BIN / "mf"), "validate-configs"], project, env)
    assert "Successfully validated the semantics of built manifest" in output
    # the data-warehouse step queries every metric, dimension and entity on DuckDB
    assert "Successfully validated metrics against data warehouse" in output
    assert "ERRORS: 0" in output and "Breaking issues" not in output


def test_monthly_metrics_equal_sql_on_the_marts(
    warehouse: tuple[Path, Path, dict[str, str]],
) -> None:
    metrics = "revenue,nps,active_customers,churn_rate,retention_rate"
    got = mf_query(warehouse, metrics, "metric_time__month")
    got["metric_time__month"] = pd.to_datetime(got["metric_time__month"])
    expected = read_sql(
        warehouse[1],
        f"""
        with revenue as (
            select date_trunc('month', order_date) as month, sum(net_revenue) as revenue
            from marts.fct_orders group by 1
        ),
        nps as (  -- the mart's own NPS column, on the dimension 'all' rows
            select response_month as month, nps from marts.nps_monthly where dimension = 'all'
        ),
        active as (  -- churn_rate: lapsed in the month / active at the end of the month before
            select date_day, sum(customers) as customers from marts.lifecycle_daily
            where stage in {ACTIVE_STAGES} group by 1
        ),
        month_end as (
            select date_trunc('month', date_day) as month, arg_max(customers, date_day) as active
            from active group by 1
        ),
        cohorts as (  -- metric_time of retention_rate is the cohort month (all months since)
            select cohort_month as month, sum(active_customers) / sum(customers) as retention
            from marts.cohort_retention group by 1
        ),
        lapsed as (
            select date_trunc('month', date_day) as month, sum(entries) as churned
            from marts.lifecycle_daily where stage = 'lapsed' group by 1
        )
        select
            month_end.month as metric_time__month, revenue.revenue, nps.nps,
            month_end.active as active_customers,
            lapsed.churned / nullif(previous.active, 0) as churn_rate,
            cohorts.retention as retention_rate
        from month_end
        left join revenue using (month)
        left join nps using (month)
        left join lapsed using (month)
        left join cohorts using (month)
        left join month_end as previous on previous.month = month_end.month - interval 1 month
        """,
    )
    assert_same(got, expected, "metric_time__month")
    assert len(got) >= 6 and got["revenue"].sum() > 0
    assert got["nps"].notna().sum() >= 6  # NPS every month with answers
    assert (got["churn_rate"] > 0).any()  # some customers lapsed within the period


def test_clv_segment_size_and_revenue_by_segment_equal_sql(
    warehouse: tuple[Path, Path, dict[str, str]],
) -> None:
    # revenue (fct_orders) reaches customer_segments through the customer entity
    got = mf_query(warehouse, "predicted_clv,segmented_customers,revenue", "customer__segment")
    expected = read_sql(
        warehouse[1],
        """
        select s.segment as customer__segment, sum(s.clv) as predicted_clv,
               count(*) as segmented_customers, sum(o.revenue) as revenue
        from marts.customer_segments as s
        left join (select customer_id, sum(net_revenue) as revenue from marts.fct_orders
                   group by 1) as o using (customer_id)
        group by 1
        """,
    )
    assert_same(got, expected, "customer__segment")
    assert got["predicted_clv"].sum() > 0  # the ML scores made it into the metric
    assert len(got) >= 3
