"""Full refresh and partition-by-partition incremental builds give identical marts.

A small simulated landing zone (real simulator, real ingest) is built twice with ``dbt build``:
once in one go as of the last day (full refresh), once incrementally: a first build over the
first days, then a few runs that each load new partitions and pass them as
``--vars {min_date, max_date}`` or as the environment variables ``LIFECYCLE_MIN_DATE`` /
``LIFECYCLE_MAX_DATE`` like the Dagster nightly job (the last run passes no range). Every
kind of bad input lands in each run (data-quality issues are counted incrementally).
Late CDC versions (deliveries, returns) land in later runs than their order. The marts must
be identical both ways, and rows of customers untouched by a run must not be rewritten.
"""

from __future__ import annotations

import datetime as dt
import json
import os
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
# (first, last, how the day range is passed): one day as --vars, a chunk across a month end as
# the environment variables the Dagster nightly sets, a day without a range
STEPS = [
    (dt.date(2025, 1, 25), dt.date(2025, 1, 25), "vars"),
    (dt.date(2025, 1, 26), dt.date(2025, 2, 19), "env"),
    (dt.date(2025, 2, 20), dt.date(2025, 2, 20), None),
]
LOOKBACK_DAYS = 14  # the dbt_project.yml default
MARTS = [
    "marts.fct_orders",
    "marts.customer_lifecycle_history",
    "marts.lifecycle_daily",
    "marts.lifecycle_transitions",
    "marts.dim_customers",
    "marts.delivery_experience",
    "marts.customer_segments",
    "marts.nps_monthly",
    "marts.review_summary",
    "intermediate.int_lifecycle_spells",
    "intermediate.int_population_gap_monthly",
    "intermediate.int_orders",
    "intermediate.int_customers",
    "intermediate.int_customer_purchase_days",
    "intermediate.int_data_quality_events",
    "staging.stg_order_events",
    "staging.stg_orders",
]

# the compared tables and everything upstream (other marts are full tables, not needed here)
SELECTION = ["+" + table.split(".")[1] for table in MARTS]


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


# days that land bad input (one of each data-quality issue), in the first build and in each
# incremental run; the ghost customer of the first one gets a customers row on the third
ISSUE_DAYS = [dt.date(2025, 1, 10), dt.date(2025, 1, 25), dt.date(2025, 2, 5), dt.date(2025, 2, 20)]
BAD_INPUT = """
insert into raw.orders select * replace ($day as _partition_date, 90001 as _row_number)
from (from raw.orders where _partition_date between $day - 10 and $day - 1
      order by order_id limit 1);
insert into raw.orders select * replace ($day as _partition_date, 90002 as _row_number,
    'placed' as status, ordered_at + interval 1 minute as updated_at)
from (from raw.orders where _partition_date between $day - 10 and $day - 1
      and updated_at > ordered_at
      order by order_id limit 1);
insert into raw.orders select * replace ($day as _partition_date, 90003 as _row_number,
    'ghost-order-' || $day as order_id, 'ghost-' || $day as customer_id,
    cast($day as timestamp) as ordered_at, null as updated_at)
from (from raw.orders where _partition_date < $day order by order_id limit 1);
insert into raw.reviews select * replace ($day as _partition_date, 90001 as _row_number)
from (from raw.reviews where _partition_date < $day order by review_id limit 1);
insert into raw.reviews select * replace ($day as _partition_date, 90002 as _row_number,
    'review-' || $day as review_id, 'no-order-' || $day as order_id, 'nobody' as customer_id)
from (from raw.reviews where _partition_date < $day order by review_id limit 1);
insert into raw.surveys select * replace ($day as _partition_date, 90001 as _row_number,
    'survey-' || $day as response_id, 'nobody' as customer_id)
from (from raw.surveys where _partition_date < $day order by response_id limit 1);
insert into raw.checkouts select * replace ($day as _partition_date, 90001 as _row_number,
    'checkout-' || $day as checkout_id, 'no-order-' || $day as completed_order_id)
from (from raw.checkouts where _partition_date < $day and completed_order_id is not null
      order by checkout_id limit 1);
"""
GHOST_RECORD = """
insert into raw.customers select * replace ($day as _partition_date, 90001 as _row_number,
    'ghost-' || $ghost_day as customer_id)
from (from raw.customers where _partition_date < $day order by customer_id limit 1);
"""


def load(path: Path, landing: Path, first: dt.date, last: dt.date) -> None:
    """Load every source's partitions first..last into ``path`` with the real ingest, then the
    bad input of the ISSUE_DAYS among them."""
    with duckdb.connect(str(path)) as con:
        ensure_ml_tables(con)
        for source in SOURCES:
            _, refused = load_partitions(con, source, days(first, last), landing)
            assert refused == []
        for day in (d for d in ISSUE_DAYS if first <= d <= last):
            statements = BAD_INPUT + (GHOST_RECORD if day == ISSUE_DAYS[2] else "")
            for statement in filter(str.strip, statements.split(";")):
                params = {"day": day, "ghost_day": str(ISSUE_DAYS[0])}
                con.execute(statement, {k: v for k, v in params.items() if f"${k}" in statement})


def dbt_build(
    path: Path,
    target: Path,
    variables: dict[str, str] | None,
    env: dict[str, str] | None = None,
) -> None:
    """``dbt build`` (models + data tests) on the warehouse ``path``, with ``--vars variables``
    and the environment variables ``env``; fail on any failure."""
    cli = ["build", "--select", *SELECTION, "--indirect-selection", "cautious"]
    cli += ["--exclude", "test_type:unit"]
    cli += ["--project-dir", str(PROJECT_DIR)]
    cli += ["--profiles-dir", str(PROJECT_DIR), "--target-path", str(target)]
    cli += ["--log-path", str(target)]
    if variables:
        cli += ["--vars", json.dumps(variables)]
    mp = pytest.MonkeyPatch()
    mp.setenv("LIFECYCLE_WAREHOUSE", str(path))
    for name, value in (env or {}).items():
        mp.setenv(name, value)
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
    for first, last, day_range in STEPS:
        load(incremental, landing, first, last)
        sentinel = None
        if day_range is None:  # mark rows of an untouched customer: the run must keep them
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
        env = {f"LIFECYCLE_{k.upper()}": v for k, v in variables.items()}
        dbt_build(
            incremental,
            tmp / "target_incremental",
            variables if day_range == "vars" else None,
            env if day_range == "env" else None,
        )
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


def test_nightly_environment_passes_the_day_range_and_restores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Dagster dbt step hands the run's days to dbt as environment variables (no --vars:
    partial parsing survives), drops a range left over from elsewhere when the run loaded no
    day, skips unit tests, and leaves the process environment as it found it."""
    from orchestration.defs.dbt import NIGHTLY_ENV, environment

    monkeypatch.setenv("LIFECYCLE_MIN_DATE", "2000-01-01")
    monkeypatch.delenv("LIFECYCLE_MAX_DATE", raising=False)
    monkeypatch.delenv("DBT_EXCLUDE_RESOURCE_TYPES", raising=False)
    with environment(NIGHTLY_ENV):
        assert "LIFECYCLE_MIN_DATE" not in os.environ
        assert os.environ["DBT_EXCLUDE_RESOURCE_TYPES"] == "unit_test"
    days = {"LIFECYCLE_MIN_DATE": "2025-01-26", "LIFECYCLE_MAX_DATE": "2025-02-19"}
    with environment({**NIGHTLY_ENV, **days}):
        assert {k: os.environ[k] for k in days} == days
    assert os.environ["LIFECYCLE_MIN_DATE"] == "2000-01-01"
    assert "LIFECYCLE_MAX_DATE" not in os.environ
    assert "DBT_EXCLUDE_RESOURCE_TYPES" not in os.environ


def test_a_step_leaves_its_parse_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a dbt step, the project's saved parse is that step's (a parse prepared with
    another profile would force a full parse on every step); no saved parse, no change."""
    from types import SimpleNamespace

    import orchestration.defs.dbt as dbt_defs

    project = tmp_path / "project"
    (project / "target").mkdir(parents=True)
    (project / "target" / dbt_defs.PARTIAL_PARSE).write_bytes(b"prepared elsewhere")
    monkeypatch.setattr(
        dbt_defs, "DBT_PROJECT", SimpleNamespace(project_dir=project, target_path=Path("target"))
    )
    step = tmp_path / "step"
    step.mkdir()
    dbt_defs.keep_parse(step)
    assert (project / "target" / dbt_defs.PARTIAL_PARSE).read_bytes() == b"prepared elsewhere"
    (step / dbt_defs.PARTIAL_PARSE).write_bytes(b"parsed by the step")
    dbt_defs.keep_parse(step)
    assert (project / "target" / dbt_defs.PARTIAL_PARSE).read_bytes() == b"parsed by the step"
    assert sorted(p.name for p in (project / "target").iterdir()) == [dbt_defs.PARTIAL_PARSE]
