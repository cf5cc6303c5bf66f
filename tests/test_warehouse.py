"""The warehouse connection waits out a lock held by another process instead of failing."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pytest

from orchestration.warehouse import connect

HOLD = (
    "import duckdb, sys, time\n"
    "con = duckdb.connect(sys.argv[1])\n"
    "print('locked', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
    "con.close()\n"
)


def hold_lock(path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_connect_waits_for_a_lock_held_elsewhere(tmp_path):
    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    proc = hold_lock(path, 2.0)
    try:
        start = time.monotonic()
        with connect(path, lock_timeout_s=30) as con:
            waited = time.monotonic() - start
            assert con.execute("select 1").fetchone() == (1,)
        assert waited > 0.5  # it really had to wait for the other process
    finally:
        proc.wait(timeout=30)


def test_connect_gives_up_after_its_timeout(tmp_path):
    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    proc = hold_lock(path, 10.0)
    try:
        with pytest.raises(duckdb.IOException, match="lock"), connect(path, lock_timeout_s=1):
            pass
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_ensure_ml_tables_adds_columns_to_tables_of_an_older_version(tmp_path):
    from orchestration.warehouse import ML_TABLES, ensure_ml_tables

    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("create schema ml")
        con.execute("create table ml.clv_predictions (customer_id varchar, as_of_date date)")
        con.execute("insert into ml.clv_predictions values ('c1', date '2025-01-01')")
        ensure_ml_tables(con)
        ensure_ml_tables(con)  # idempotent
        cols = [r[0] for r in con.execute("describe ml.clv_predictions").fetchall()]
        assert set(cols) == set(ML_TABLES["clv_predictions"])
        assert con.execute("select count(*) from ml.clv_predictions").fetchone()[0] == 1
