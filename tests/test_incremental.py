"""Full refresh and partition-by-partition incremental builds give identical marts.

A small simulated landing zone (real simulator, real ingest) is built twice with ``dbt build``:
once in one go as of the last day (full refresh), once incrementally: a first build over the
first days, then a few runs that each load new partitions and pass them as
``--vars {min_date, max_date}`` like the Dagster nightly job (the last run passes no vars).
Late CDC versions (deliveries, returns) land in later runs than their order. The marts must
be identical both ways, and rows of customers untouched by a run must not be rewritten.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest
from dbt.cli.main import dbtRunner

from orchestration.contract import SOURCES
from orchestration.ingest import load_partitions
from orchestration.warehouse import ensure_ml_tables
from simulator.config import SimulatorConfig
from simulator.writer import run as simulate

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
START, END = dt.date(2024, 1, 1), dt.date(2025, 2, 20)
FIRST_BUILD_END = dt.date(2025, 1, 24)
# (first, last, pass vars): one day, a chunk across a month end, a day without vars
STEPS = [
    (dt.date(2025, 1, 25), dt.date(2025, 1, 25), True),
    (dt.date(2025, 1, 26), dt.date(2025, 2, 19), True),
    (dt.date(2025, 2, 20), dt.date(2025, 2, 20), False),
]
LOOKBACK_DAYS = 14  # the dbt_project.yml default
MARTS = [
    "marts.fct_orders",
    "marts.customer_lifecycle_history",
    "marts.lifecycle_daily",
    "marts.lifecycle_transitions",
    "marts.dim_customers",
    "marts.customer_segments",
    "marts.nps_monthly",
    "marts.review_summary",
    "intermediate.int_lifecycle_spells",
    "intermediate.int_population_gap_monthly",
    "intermediate.int_orders",
    "intermediate.int_customers",
    "intermediate.int_customer_purchase_days",
]

# the compared tables and everything upstream (other marts are full tables, not needed here)
SELECTION = ["+" + table.split(".")[1] for table in MARTS]


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def load(path: Path, landing: Path, first: dt.date, last: dt.date) -> None:
    """Load every source's partitions first..last into ``path`` with the real ingest."""
    with duckdb.connect(str(path)) as con:
        ensure_ml_tables(con)
        for source in SOURCES:
            _, refused = load_partitions(con, source, days(first, last), landing)
            assert refused == []


def dbt_build(path: Path, target: Path, variables: dict[str, str] | None) -> None:
    """``dbt build`` (models + data tests) on the warehouse ``path``; fail on any failure."""
    cli = ["build", "--select", *SELECTION, "--indirect-selection", "cautious"]
    cli += ["--exclude", "test_type:unit"]
    cli += ["--project-dir", str(PROJECT_DIR)]
    cli += ["--profiles-dir", str(PROJECT_DIR), "--target-path", str(target)]
    cli += ["--log-path", str(target)]
    if variables:
        cli += ["--vars", json.dumps(variables)]
    mp = pytest.MonkeyPatch()
    mp.setenv("LIFECYCLE_WAREHOUSE", str(path))
    try:
        result = dbtRunner().invoke(cli)
    finally:
        mp.undo()
    failures = [
        f"{r.node.unique_id}: {r.status} {r.message}"
        for r in (result.result or [])
        if str(r.status) not in ("success", "pass", "warn")
    ]
    assert result.success and not failures, (result.exception, failures)


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0]


def untouched_customer(con: duckdb.DuckDBPyConnection, window_start: dt.date) -> str:
    """A customer the next run must not recompute: no order version, customer row or first
    purchase in the window's months, and no open order."""
    return scalar(
        con,
        f"""select customer_id from marts.fct_orders
            where customer_id not in (
                select customer_id from raw.orders where _partition_date >= date '{window_start}'
                union select customer_id from raw.customers
                where _partition_date >= date '{window_start}')
            group by customer_id
            having bool_and(is_delivered or is_cancelled)
               and min(order_date) < date '{window_start}' - interval 60 day
            order by customer_id limit 1""",
    )


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, int]]:
    """(full refresh warehouse, incremental warehouse, facts about the incremental runs)."""
    tmp = tmp_path_factory.mktemp("incremental")
    landing = tmp / "landing"
    config = SimulatorConfig(customers=400, start=START, end=END, seed=7)
    simulate(config, landing, truth_dir=tmp / "truth", fmt="parquet")

    full = tmp / "full_build.duckdb"
    load(full, landing, START, END)
    dbt_build(full, tmp / "target_full", None)

    incremental = tmp / "incremental_build.duckdb"
    load(incremental, landing, START, FIRST_BUILD_END)
    dbt_build(incremental, tmp / "target_incremental", None)  # first run: builds everything
    facts: dict[str, int] = {}
    for first, last, pass_vars in STEPS:
        load(incremental, landing, first, last)
        sentinel = None
        if not pass_vars:  # mark rows of an untouched customer: the run must keep them
            with duckdb.connect(str(incremental)) as con:
                sentinel = untouched_customer(con, last - dt.timedelta(days=LOOKBACK_DAYS))
                for table in ("marts.fct_orders", "intermediate.int_orders"):
                    con.execute(
                        f"update {table} set version_count = version_count + 1000 "
                        "where customer_id = ?",
                        [sentinel],
                    )
                con.execute(
                    "update intermediate.int_lifecycle_spells set spell_id = 'kept-' || spell_id "
                    "where customer_id = ?",
                    [sentinel],
                )
        variables = {"min_date": first.isoformat(), "max_date": last.isoformat()}
        dbt_build(incremental, tmp / "target_incremental", variables if pass_vars else None)
        if sentinel is not None:
            with duckdb.connect(str(incremental)) as con:
                facts["kept_orders"] = scalar(
                    con,
                    "select count(*) from marts.fct_orders where version_count > 1000",
                )
                facts["kept_spells"] = scalar(
                    con,
                    "select count(*) from intermediate.int_lifecycle_spells "
                    "where spell_id like 'kept-%'",
                )
                facts["kept_int_orders"] = scalar(
                    con,
                    "select count(*) from intermediate.int_orders where version_count > 1000",
                )
                facts["sentinel_orders"] = scalar(
                    con, f"select count(*) from marts.fct_orders where customer_id = '{sentinel}'"
                )
                facts["sentinel_spells"] = scalar(
                    con,
                    "select count(*) from intermediate.int_lifecycle_spells "
                    f"where customer_id = '{sentinel}'",
                )
                for table in ("marts.fct_orders", "intermediate.int_orders"):
                    con.execute(
                        f"update {table} set version_count = version_count - 1000 "
                        "where version_count > 1000"
                    )
                con.execute(
                    "update intermediate.int_lifecycle_spells "
                    "set spell_id = substr(spell_id, 6) where spell_id like 'kept-%'"
                )
    return full, incremental, facts


def test_incremental_runs_keep_untouched_rows(builds: tuple[Path, Path, dict[str, int]]) -> None:
    _, _, facts = builds
    assert facts["sentinel_orders"] > 0 and facts["sentinel_spells"] > 0
    assert facts["kept_orders"] == facts["sentinel_orders"]
    assert facts["kept_int_orders"] == facts["sentinel_orders"]
    assert facts["kept_spells"] == facts["sentinel_spells"]


def test_late_changes_cross_runs(builds: tuple[Path, Path, dict[str, int]]) -> None:
    """The landing zone really exercises late CDC: orders placed before a run and changed in a
    later run, and customers who turn at_risk/lapsed between runs without any new order."""
    _, incremental, _ = builds
    bounds = [FIRST_BUILD_END] + [last for _, last, _ in STEPS]
    cases = " ".join(f"when _partition_date <= date '{b}' then {i}" for i, b in enumerate(bounds))
    with duckdb.connect(str(incremental)) as con:  # dbt-duckdb may keep its handle open
        crossing = scalar(
            con,
            f"""select count(*) from (
                  select order_id from raw.orders
                  group by order_id
                  having count(distinct case {cases} end) > 1)""",
        )
        silent = scalar(
            con,
            f"""select count(*) from marts.customer_lifecycle_history h
                where h.stage in ('at_risk', 'lapsed')
                  and h.valid_from > date '{FIRST_BUILD_END}'
                  and h.customer_id not in (
                      select customer_id from raw.orders
                      where _partition_date > date '{FIRST_BUILD_END}' - interval 30 day)""",
        )
    assert crossing > 20
    assert silent > 0


@pytest.mark.parametrize("table", MARTS)
def test_full_refresh_equals_incremental(
    builds: tuple[Path, Path, dict[str, int]], table: str
) -> None:
    full, incremental, _ = builds
    with duckdb.connect(str(incremental)) as con:  # dbt-duckdb may keep its handle open
        # views name their catalog (the file stem): attach under it, once per process
        con.execute(f"attach if not exists '{full}'")
        rows = scalar(con, f"select count(*) from {table}")
        assert rows == scalar(con, f"select count(*) from full_build.{table}")
        only_incremental = con.execute(
            f"select * from {table} except all select * from full_build.{table} limit 5"
        ).fetchall()
        only_full = con.execute(
            f"select * from full_build.{table} except all select * from {table} limit 5"
        ).fetchall()
    assert rows > 0
    assert only_incremental == [] and only_full == [], (only_incremental, only_full)
