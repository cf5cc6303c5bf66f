"""DuckDB warehouse access shared by the Dagster assets (no dagster import).

DuckDB allows one writing process per file. Dagster serialises the writers with a
concurrency pool (see ``defs/resources.py``); :func:`connect` additionally waits out a
lock held by a process outside Dagster (an analyst's CLI session, say) instead of failing.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

# The ml.* tables written by the Python assets and read by dbt (sources `ml`).
ML_TABLES: dict[str, dict[str, str]] = {
    "churn_scores": {
        "customer_id": "VARCHAR",
        "as_of_date": "DATE",
        "churn_probability": "DOUBLE",
        "model_version": "VARCHAR",
        "scored_at": "TIMESTAMP",
    },
    "clv_predictions": {
        "customer_id": "VARCHAR",
        "as_of_date": "DATE",
        "p_alive": "DOUBLE",
        "expected_orders_12m": "DOUBLE",
        "expected_spend_12m": "DOUBLE",
        "clv": "DOUBLE",
        "clv_lower": "DOUBLE",
        "clv_upper": "DOUBLE",
        "model_version": "VARCHAR",
        "scored_at": "TIMESTAMP",
        "expected_orders_lower": "DOUBLE",
        "expected_orders_upper": "DOUBLE",
    },
    "churn_backtest": {
        "as_of_date": "DATE",
        "model_version": "VARCHAR",
        "horizon_days": "INTEGER",
        "label_end": "DATE",
        "n": "BIGINT",
        "n_unlabelled": "BIGINT",
        "churn_rate": "DOUBLE",
        "mean_probability": "DOUBLE",
        "roc_auc": "DOUBLE",
        "pr_auc": "DOUBLE",
        "brier": "DOUBLE",
        "ece": "DOUBLE",
        "lift_top_decile": "DOUBLE",
    },
    "model_runs": {
        "run_id": "VARCHAR",
        "model_kind": "VARCHAR",
        "model_version": "VARCHAR",
        "trained_at": "TIMESTAMP",
        "as_of_date": "DATE",
        "metrics_json": "VARCHAR",
        "is_champion": "BOOLEAN",
    },
}

LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked")


def is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and any(m in str(exc) for m in LOCK_MARKERS)


DEFAULT_MEMORY_LIMIT = "4GB"


@contextlib.contextmanager
def connect(
    path: Path, read_only: bool = False, lock_timeout_s: float = 120.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (creating its folder), waiting up to ``lock_timeout_s`` for a
    lock held by another process; the session time zone is UTC and DuckDB's buffer pool is
    capped at ``LIFECYCLE_DUCKDB_MEMORY_LIMIT`` (default 4GB, as dbt's profile: DuckDB would
    otherwise keep up to 80 % of RAM; beyond the cap it spills to disk)."""
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    limit = os.environ.get("LIFECYCLE_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
    deadline = time.monotonic() + lock_timeout_s
    delay = 0.2
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only, config={"memory_limit": limit})
            break
        except duckdb.IOException as exc:
            if not is_lock_error(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    try:
        con.execute("set timezone = 'UTC'")
        yield con
    finally:
        con.close()


def ensure_ml_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create schema ``ml`` and its tables if missing, so dbt sources always resolve."""
    con.execute("create schema if not exists ml")
    for name, cols in ML_TABLES.items():
        body = ", ".join(f'"{c}" {t}' for c, t in cols.items())
        con.execute(f'create table if not exists ml."{name}" ({body})')
        for column, sql_type in cols.items():  # columns added since the table was created
            con.execute(f'alter table ml."{name}" add column if not exists "{column}" {sql_type}')


def replace_rows(
    con: duckdb.DuckDBPyConnection, table: str, frame, where_sql: str, params: dict
) -> int:
    """Atomically replace the rows of ``ml.<table>`` matching ``where_sql`` with ``frame``
    (columns in ``ML_TABLES`` order). Returns the number of rows inserted."""
    cols = list(ML_TABLES[table])
    con.register("_frame", frame[cols])
    try:
        con.execute("begin transaction")
        con.execute(f'delete from ml."{table}" where {where_sql}', params)
        col_sql = ", ".join(f'"{c}"' for c in cols)
        con.execute(f'insert into ml."{table}" ({col_sql}) select {col_sql} from _frame')
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_frame")
    return len(frame)
