"""The analysts' published copy on real DuckDB files: what it holds, retention, and a
reader that keeps working while a writer holds the warehouse and a publish swaps files."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pytest
from test_exports import DAY1, make_warehouse, random_segments

from orchestration.publish import list_snapshots, publish_snapshot

IDS = [f"C{i:04d}" for i in range(200)]

WRITER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])  # read-write: holds the warehouse's lock until it exits
print("locked", flush=True)
con.execute("update marts.version set v = 2")
for i in range(30):
    con.execute("insert into ml.churn_scores select 'X' || $i, random() from range(500)", {"i": i})
    time.sleep(0.05)
print("done", flush=True)
"""


def warehouse(path: Path) -> None:
    """Segments and raw e-mails (make_warehouse), plus a version marker, an ml table, a
    marts view over raw and a staging view."""
    make_warehouse(path, DAY1, random_segments(np.random.default_rng(6), IDS))
    with duckdb.connect(str(path)) as con:
        con.execute("create or replace table marts.version as select 1 as v")
        con.execute("create schema if not exists ml; create schema if not exists staging")
        con.execute(
            "create or replace table ml.churn_scores as select customer_id, "
            "0.5 as churn_probability from marts.customer_segments"
        )
        con.execute("create or replace view staging.stg_customers as select * from raw.customers")
        con.execute(
            "create or replace view marts.customer_count as "
            "select count(distinct customer_id) as n from raw.customers"
        )


def read_version(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    return con.execute(
        "select (select v from marts.version), (select count(*) from ml.churn_scores)"
    ).fetchone()


def test_publish_holds_marts_and_ml_tables_only(tmp_path):
    wh, folder = tmp_path / "lifecycle.duckdb", tmp_path / "published"
    warehouse(wh)
    result = publish_snapshot(wh, folder)

    assert result.stable_path.stat().st_ino == result.snapshot.stat().st_ino
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [result.snapshot.name, "lifecycle.duckdb"]
    )
    with duckdb.connect(str(result.stable_path), read_only=True) as con:
        schemas = {r[0] for r in con.execute("select schema_name from duckdb_tables()").fetchall()}
        assert schemas == {"marts", "ml", "main"}
        assert (
            con.execute("select count(*) from duckdb_views() where not internal").fetchone()[0] == 0
        )
        assert con.execute("select n from marts.customer_count").fetchone()[0] == len(IDS)
        assert con.execute("select as_of_date from snapshot_info").fetchone()[0] == DAY1
        counts = dict(con.execute("select table_name, row_count from snapshot_tables").fetchall())
        coverage = dict(con.execute("select table_name, coverage from snapshot_tables").fetchall())
    assert counts == result.tables
    assert set(coverage.values()) == {"all rows"}  # this ml.churn_scores has no as_of_date
    assert counts["marts.customer_segments"] == len(IDS)


def test_only_the_newest_snapshots_are_kept(tmp_path):
    wh, folder = tmp_path / "lifecycle.duckdb", tmp_path / "published"
    warehouse(wh)
    results = [publish_snapshot(wh, folder, keep=2) for _ in range(4)]
    assert list_snapshots(folder) == [r.snapshot for r in results[-2:]]
    assert (folder / "lifecycle.duckdb").stat().st_ino == results[-1].snapshot.stat().st_ino
    assert not list(folder.glob(".*")) and not list(folder.glob("*.wal"))


def test_reader_keeps_its_snapshot_while_a_run_writes_and_a_publish_swaps(tmp_path):
    wh, folder = tmp_path / "lifecycle.duckdb", tmp_path / "published"
    warehouse(wh)
    first = publish_snapshot(wh, folder, keep=1)
    reader = duckdb.connect(str(folder / "lifecycle.duckdb"), read_only=True)
    before = read_version(reader)
    assert before == (1, len(IDS))

    # The "run": another process writes the warehouse (it gets the lock although the
    # reader is connected), and a publish waits for it, then swaps the stable path.
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(wh)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "locked"
    published = {}
    publisher = threading.Thread(
        target=lambda: published.update(r=publish_snapshot(wh, folder, keep=1, lock_timeout_s=60))
    )
    publisher.start()
    seen = []
    while publisher.is_alive() or writer.poll() is None:
        seen.append(read_version(reader))
        time.sleep(0.01)
    publisher.join()
    assert writer.wait() == 0
    second = published["r"]

    assert len(seen) > 20 and set(seen) == {before}  # every query worked, on the old copy
    assert first.snapshot in second.removed and not first.snapshot.exists()
    assert read_version(reader) == before  # its file is gone from the folder, still readable
    reader.close()
    with duckdb.connect(str(folder / "lifecycle.duckdb"), read_only=True) as again:
        assert read_version(again) == (2, len(IDS) + 30 * 500)


def score_history(path: Path, dates: list[dt.date], customers: int) -> None:
    """ml.churn_scores and ml.clv_predictions with ``customers`` rows per as-of date."""
    with duckdb.connect(str(path)) as con:
        con.execute("drop table if exists ml.churn_scores")
        for table in ("churn_scores", "clv_predictions"):
            con.execute(
                f"create table ml.{table} as select 'C' || c as customer_id, "
                "cast(d as date) as as_of_date, random() as p "
                "from unnest($d) t(d), range($n) r(c)",
                {"d": dates, "n": customers},
            )


def test_score_history_is_published_for_the_newest_dates_only(tmp_path):
    wh, folder = tmp_path / "lifecycle.duckdb", tmp_path / "published"
    warehouse(wh)
    # 12 nights, one missing (the window counts as-of dates present, not calendar days)
    dates = [DAY1 - dt.timedelta(days=i) for i in range(13) if i != 3]
    score_history(wh, dates, 40)
    newest7 = sorted(dates)[-7:]

    result = publish_snapshot(wh, folder, score_days=7)
    with duckdb.connect(str(result.stable_path), read_only=True) as con:
        for table in ("ml.churn_scores", "ml.clv_predictions"):
            got = con.execute(
                f"select as_of_date, count(*) from {table} group by 1 order by 1"
            ).fetchall()
            assert got == [(d, 40) for d in newest7]
        assert con.execute("select count(*) from marts.customer_segments").fetchone()[0] == len(IDS)
        info = con.execute(
            "select score_days, score_first_as_of_date, score_last_as_of_date from snapshot_info"
        ).fetchone()
        rows = con.execute(
            "select table_name, row_count, as_of_dates, first_as_of_date, last_as_of_date, "
            "coverage from snapshot_tables where table_name like 'ml.c%' order by 1"
        ).fetchall()
        other = con.execute(
            "select distinct coverage from snapshot_tables where table_name not like 'ml.c%'"
        ).fetchall()
    assert info == (7, newest7[0], newest7[-1])
    for table_name, count, n_dates, first, last, coverage in rows:
        assert (count, n_dates, first, last) == (7 * 40, 7, newest7[0], newest7[-1])
        assert coverage.startswith("newest 7 of 12 as-of dates")
        assert result.tables[table_name] == count
        assert result.score_windows[table_name].dates_in_warehouse == 12
    assert other == [("all rows",)]
    with duckdb.connect(str(wh), read_only=True) as con:  # the warehouse keeps every date
        assert con.execute("select count(*) from ml.churn_scores").fetchone()[0] == 12 * 40

    # 0: every date the warehouse keeps; a window wider than the history: the same
    for days in (0, 30):
        result = publish_snapshot(wh, folder, score_days=days)
        with duckdb.connect(str(result.stable_path), read_only=True) as con:
            assert con.execute("select count(*) from ml.clv_predictions").fetchone()[0] == 12 * 40
            info = con.execute(
                "select score_days, score_first_as_of_date from snapshot_info"
            ).fetchone()
            coverage = con.execute(
                "select coverage from snapshot_tables where table_name = 'ml.churn_scores'"
            ).fetchone()[0]
        assert info == (days, min(dates)) and coverage == "all 12 as-of dates of the warehouse"
    with pytest.raises(ValueError, match="score_days"):
        publish_snapshot(wh, folder, score_days=-1)


def test_dagster_delivery_assets(tmp_path, monkeypatch):
    from orchestration.defs.delivery import published_warehouse, segment_exports
    from orchestration.defs.shared import WarehouseResource

    wh = tmp_path / "lifecycle.duckdb"
    warehouse(wh)
    score_history(wh, [DAY1 - dt.timedelta(days=i) for i in range(10)], 5)
    monkeypatch.setenv("LIFECYCLE_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("LIFECYCLE_PUBLISHED_DIR", str(tmp_path / "published"))
    monkeypatch.setenv("LIFECYCLE_EXPORT_SALT", "s")
    result = dg.materialize(
        [segment_exports, published_warehouse],
        resources={"warehouse": WarehouseResource(path=str(wh))},
    )
    assert result.success
    day = dt.date.isoformat(DAY1)
    assert (tmp_path / "exports" / day / "manifest.json").is_file()
    with duckdb.connect(str(tmp_path / "published" / "lifecycle.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from marts.customer_segments").fetchone()[0] == len(IDS)
        assert con.execute("select count(*) from ml.churn_scores").fetchone()[0] == 7 * 5
    published = result.asset_materializations_for_node("delivery__published_warehouse")[0].metadata
    window = published["score_windows"].value["ml.churn_scores"]
    assert window["last"] == day and window["coverage"].startswith("newest 7 of 10")
