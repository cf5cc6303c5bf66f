"""The dbt project builds on PostgreSQL 15 and gives the same marts as on DuckDB.

A small landing zone is simulated and loaded into DuckDB by the real ingest; the ML tables
are filled by the real CLV and churn models (on the DuckDB staging views). The raw and ml
tables are then copied, same columns and types, into a PostgreSQL 15 server started for this
session (tests/pg_server.py). DuckDB gets one full ``dbt build``; PostgreSQL gets a full run
without the last NIGHTLY_DAYS partitions, then those partitions and an incremental
``dbt build`` (vars min_date/max_date, as the Dagster nightly run), all with the same as-of
date. Every table of schema ``marts`` must be equal on both engines (floats within 1e-6).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import psycopg2
import pytest
from dbt.cli.main import dbtRunner

sys.path.insert(0, str(Path(__file__).parent))
from pg_server import PgServer  # noqa: E402

from ml.churn import ChurnModel  # noqa: E402
from ml.clv import fit_clv, summary_from_orders  # noqa: E402
from orchestration.ingest import ensure_raw_tables, load_partitions  # noqa: E402
from orchestration.ml_io import as_of_cutoff, load_lifecycle_data  # noqa: E402
from orchestration.warehouse import ML_TABLES, ensure_ml_tables, replace_rows  # noqa: E402
from simulator.config import LANDING_SOURCES, SimulatorConfig  # noqa: E402
from simulator.writer import run as simulate  # noqa: E402

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
START, DAYS, CUSTOMERS = dt.date(2024, 1, 1), 240, 300
AS_OF = START + dt.timedelta(days=DAYS - 1)
NIGHTLY_DAYS = 2  # PostgreSQL: full build without the last 2 days, then those incrementally
DBNAME = "lifecycle"
KEY_MARTS = (
    "dim_customers",
    "fct_orders",
    "customer_lifecycle_history",
    "customer_segments",
    "cohort_retention",
    "nps_monthly",
)
# DuckDB type (prefix) -> PostgreSQL type of the copied raw/ml columns.
PG_TYPES = {
    "VARCHAR": "text",
    "TIMESTAMP": "timestamp",
    "DATE": "date",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "DOUBLE": "double precision",
    "BOOLEAN": "boolean",
    "DECIMAL": "numeric",
}
pytestmark = pytest.mark.timeout(900)


def run_dbt(target_dir: Path, *args: str, target: str | None = None, **dbt_vars: str) -> None:
    """Run a dbt command with the test as-of date (plus ``dbt_vars``); fail the test if dbt
    fails. ``target`` None: the profile's default (env LIFECYCLE_DBT_TARGET, as in Dagster)."""
    cli = ["--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR)]
    cli += ["--target-path", str(target_dir), "--log-path", str(target_dir)]
    cli += ["--target", target] if target else []
    cli += ["--vars", json.dumps({"as_of_date": AS_OF.isoformat(), **dbt_vars})]
    result = dbtRunner().invoke([*args, *cli])
    failures = [
        f"{r.node.unique_id}: {r.status} {r.message}"
        for r in (result.result or [])
        if str(r.status) not in ("success", "pass", "warn", "skipped")
    ]
    report = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(failures))  # no ANSI colours
    assert result.success and not failures, f"dbt {args} {target}: {result.exception}\n{report}"


def score_models(con: duckdb.DuckDBPyConnection) -> None:
    """Fill ml.clv_predictions and ml.churn_scores with the real models (as the ML assets do)."""
    data = load_lifecycle_data(con, AS_OF)
    scored_at = pd.Timestamp(AS_OF) + pd.Timedelta(hours=27)
    summary = summary_from_orders(data.orders, as_of_cutoff(AS_OF))
    clv = fit_clv(summary).score(summary, horizon_days=365).reset_index(drop=True)
    churn = ChurnModel(horizon_days=60, n_cutoffs=2, n_threads=1).fit(data, as_of_cutoff(AS_OF))
    scores = churn.predict_proba(data, as_of_cutoff(AS_OF))
    for table, frame in (("clv_predictions", clv), ("churn_scores", scores)):
        frame = frame.assign(as_of_date=AS_OF, model_version=f"{table}-test", scored_at=scored_at)
        replace_rows(con, table, frame, "as_of_date = $d", {"d": AS_OF})


def copy_to_postgres(
    duck: duckdb.DuckDBPyConnection, dsn: str, tmp: Path, first: dt.date, last: dt.date
) -> None:
    """Copy the raw.* rows of partitions ``first``..``last`` into PostgreSQL (tables created
    with the same columns and equivalent types when missing) through CSV files and COPY; the
    ml.* tables are copied whole when they are created."""
    columns = duck.execute(
        "select table_schema, table_name, column_name, data_type from information_schema.columns"
        " where table_schema in ('raw', 'ml') order by table_schema, table_name, ordinal_position"
    ).fetchall()
    tables: dict[str, list[str]] = {}
    for schema, table, column, data_type in columns:
        base = data_type.split("(")[0]
        pg_type = PG_TYPES[base] + (data_type[len(base) :] if base == "DECIMAL" else "")
        tables.setdefault(f'{schema}."{table}"', []).append(f'"{column}" {pg_type}')
    con = psycopg2.connect(dsn)
    try:
        with con, con.cursor() as cur:
            cur.execute("create schema if not exists raw; create schema if not exists ml")
            cur.execute(
                "select table_schema || '.\"' || table_name || '\"' from information_schema.tables"
            )
            existing = {r[0] for r in cur.fetchall()}
            for i, (table, cols) in enumerate(tables.items()):
                if table.startswith("ml.") and table in existing:
                    continue
                cur.execute(f"create table if not exists {table} ({', '.join(cols)})")
                where = "true" if table.startswith("ml.") else "_partition_date between $1 and $2"
                csv = tmp / f"{i}.csv"
                # NULL is written unquoted and empty, '' quoted: PostgreSQL's CSV convention.
                duck.execute(
                    f"copy (select * from {table} where {where}) to '{csv}' "
                    "(format csv, header false)",
                    [first, last] if table.startswith("raw.") else [],
                )
                with csv.open() as fh:
                    cur.copy_expert(f"copy {table} from stdin with (format csv)", fh)
    finally:
        con.close()


def row_counts(cursor_or_con, tables: list[str]) -> dict[str, int]:
    """count(*) of each table, through a DuckDB connection or a psycopg2 cursor."""
    counts = {}
    for table in tables:
        done = cursor_or_con.execute(f"select count(*) from {table}")
        counts[table] = (done or cursor_or_con).fetchone()[0]
    return counts


@pytest.fixture(scope="module")
def builds(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One simulated landing zone built on DuckDB (full build) and on PostgreSQL (a build
    without the last NIGHTLY_DAYS partitions, then those days incrementally, as Dagster does)."""
    tmp = tmp_path_factory.mktemp("portability")
    landing = tmp / "landing"
    config = SimulatorConfig(customers=CUSTOMERS, start=START, end=AS_OF, seed=7, bad_row_rate=0.02)
    simulate(config, landing, truth_dir=tmp / "truth")
    path = tmp / "lifecycle.duckdb"
    days = [START + dt.timedelta(days=i) for i in range(DAYS)]
    cut = AS_OF - dt.timedelta(days=NIGHTLY_DAYS)
    timings = {}
    with duckdb.connect(str(path)) as con:
        ensure_raw_tables(con)
        ensure_ml_tables(con)
        for source in LANDING_SOURCES:
            load_partitions(con, source, days, landing)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LIFECYCLE_WAREHOUSE", str(path))
        run_dbt(tmp / "target-duck", "run", "--select", "staging", target="dev")
        with duckdb.connect(str(path)) as con:
            score_models(con)
        started = time.perf_counter()
        run_dbt(tmp / "target-duck", "build", target="dev")
        timings["duckdb"] = time.perf_counter() - started
    pg_server.create_database(DBNAME)
    dsn = pg_server.dsn(DBNAME)
    with duckdb.connect(str(path)) as con:
        copy_to_postgres(con, dsn, tmp, START, cut)
    pg_env = {
        "LIFECYCLE_DBT_TARGET": "postgres",
        "LIFECYCLE_PG_HOST": "127.0.0.1",
        "LIFECYCLE_PG_PORT": str(pg_server.port),
        "LIFECYCLE_PG_USER": pg_server.superuser,
        "LIFECYCLE_PG_PASSWORD": "",
        "LIFECYCLE_PG_DBNAME": DBNAME,
    }
    with pytest.MonkeyPatch.context() as env:
        for name, value in pg_env.items():
            env.setenv(name, value)
        started = time.perf_counter()
        run_dbt(tmp / "target-pg", "run")  # models only: `build` below runs every test
        timings["postgres_full"] = time.perf_counter() - started
        with duckdb.connect(str(path)) as con:
            copy_to_postgres(con, dsn, tmp, cut + dt.timedelta(days=1), AS_OF)
        started = time.perf_counter()
        nightly = {"min_date": str(cut + dt.timedelta(days=1)), "max_date": str(AS_OF)}
        run_dbt(tmp / "target-pg", "build", **nightly)
        timings["postgres_incremental"] = time.perf_counter() - started
    print(f"dbt build seconds: {timings}")
    with duckdb.connect(str(path)) as con:
        tables = [
            f'{s}."{t}"'
            for s, t in con.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_schema in ('raw', 'ml')"
            ).fetchall()
        ]
        duck_counts = row_counts(con, tables)
    with contextlib.closing(psycopg2.connect(dsn)) as pg, pg.cursor() as cur:
        pg_counts = row_counts(cur, tables)
    return {"duckdb": path, "dsn": dsn, "raw_duckdb": duck_counts, "raw_pg": pg_counts}


def read_duckdb(path: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(path)) as con:
        return con.execute(sql).df()


def read_postgres(dsn: str, sql: str) -> pd.DataFrame:
    con = psycopg2.connect(dsn)
    try:
        with con.cursor() as cur:
            cur.execute(sql)
            return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
    finally:
        con.close()


def normalized(frame: pd.DataFrame) -> pd.DataFrame:
    """Engine-neutral values: numbers as float, dates/timestamps as datetime64, rows sorted."""
    out = frame.copy()
    for col in out.columns:
        values = out[col].dropna()
        first = values.iloc[0] if len(values) else None
        if isinstance(first, bool):
            out[col] = out[col].astype("boolean")
        elif isinstance(first, (dt.date, pd.Timestamp)) or pd.api.types.is_datetime64_any_dtype(
            out[col]
        ):
            out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]")
        elif first is not None and not isinstance(first, str):
            out[col] = pd.to_numeric(out[col]).astype("float64")
        elif first is None:
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    keys = [c for c in out.columns if out[c].dtype != "float64"]
    floats = [c for c in out.columns if out[c].dtype == "float64"]
    order = out[keys].astype(str).assign(**{c: out[c].round(6) for c in floats})
    return out.loc[order.sort_values([*keys, *floats]).index].reset_index(drop=True)


def test_raw_tables_copied_unchanged(builds: dict) -> None:
    counts = builds["raw_pg"]
    assert counts == builds["raw_duckdb"]
    assert counts['raw."orders"'] > 1000
    assert counts['ml."clv_predictions"'] > 100
    assert counts['ml."churn_scores"'] > 100
    assert set(counts) >= {f'ml."{t}"' for t in ML_TABLES}


def test_marts_equal_on_duckdb_and_postgres(builds: dict) -> None:
    sql = "select table_name from information_schema.tables where table_schema = 'marts'"
    duck_marts = set(read_duckdb(builds["duckdb"], sql)["table_name"])
    pg_marts = set(read_postgres(builds["dsn"], sql)["table_name"])
    assert set(KEY_MARTS) <= duck_marts
    assert duck_marts == pg_marts
    problems, rows = [], {}
    for mart in sorted(duck_marts):
        query = f'select * from marts."{mart}"'
        duck = normalized(read_duckdb(builds["duckdb"], query))
        pg = normalized(read_postgres(builds["dsn"], query))
        rows[mart] = (len(duck), len(pg))
        if mart in KEY_MARTS and len(duck) == 0:
            problems.append(f"{mart}: empty")
        try:
            assert list(duck.columns) == list(pg.columns), "columns differ"
            assert len(duck) == len(pg), f"row counts {len(duck)} (duckdb) != {len(pg)} (postgres)"
            pd.testing.assert_frame_equal(duck, pg, check_dtype=False, rtol=1e-6, obj=mart)
        except AssertionError as exc:
            problems.append(f"{mart}: {str(exc)[:1500]}")
    print(f"mart rows (duckdb, postgres): {rows}")
    assert not problems, "\n".join(problems)
