"""The analysts' read-only copy of the warehouse (pure Python + DuckDB; no dagster import).

:func:`publish_snapshot` copies every table and view of the analyst schemas (``marts``,
``ml``; views become tables, so the copy needs nothing else) into a new DuckDB file
``<published_dir>/lifecycle-<UTC timestamp>.duckdb`` in one read transaction of the
warehouse, then points the stable path ``<published_dir>/lifecycle.duckdb`` at it with
``os.replace`` of a hard link (a copy where hard links are not supported). Readers open the
stable path read-only: they never touch the warehouse file or its lock, and a reader that
has the file open keeps its snapshot (its inode) until it reconnects, even after the
snapshot is pruned. Only the newest ``keep`` snapshots are kept.

The score-history tables (:data:`SCORE_TABLES`) are copied for their newest ``score_days``
as-of dates only (``LIFECYCLE_PUBLISHED_SCORE_DAYS``, default 7; ``0``: every date the
warehouse keeps), so the copy's cost does not grow with the history. ``main.snapshot_tables``
(per table: row count, as-of dates copied, first/last as-of date, coverage) and
``main.snapshot_info`` (``score_days``, the score window) tell analysts what they hold.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestration import warehouse
from orchestration.ingest import sql_literal
from orchestration.settings import resolve_path

STABLE_NAME = "lifecycle.duckdb"
SNAPSHOT_GLOB = "lifecycle-*.duckdb"
ANALYST_SCHEMAS = ("marts", "ml")
DEFAULT_KEEP = 3
DEFAULT_SCORE_DAYS = 7
SCORE_TABLES = ("ml.churn_scores", "ml.clv_predictions")


def fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def published_dir() -> Path:
    """``LIFECYCLE_PUBLISHED_DIR`` (default ``data/published``)."""
    return resolve_path("LIFECYCLE_PUBLISHED_DIR", "data/published")


def published_keep() -> int:
    """``LIFECYCLE_PUBLISHED_KEEP``: snapshots kept (default 3, at least 1)."""
    raw = os.environ.get("LIFECYCLE_PUBLISHED_KEEP")
    try:
        return max(1, int(raw)) if raw else DEFAULT_KEEP
    except ValueError as exc:
        raise ValueError(f"LIFECYCLE_PUBLISHED_KEEP must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class ScoreWindow:
    """The as-of dates of a score-history table that a snapshot holds."""

    dates_copied: int
    dates_in_warehouse: int
    first: dt.date | None
    last: dt.date | None

    @property
    def coverage(self) -> str:
        if self.dates_copied < self.dates_in_warehouse:
            return (
                f"newest {self.dates_copied} of {self.dates_in_warehouse} as-of dates "
                "(older ones only in the warehouse)"
            )
        return f"all {self.dates_in_warehouse} as-of dates of the warehouse"


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish_snapshot` published."""

    snapshot: Path
    stable_path: Path
    tables: dict[str, int] = field(default_factory=dict)
    as_of_date: dt.date | None = None
    bytes: int = 0
    seconds: float = 0.0
    removed: list[Path] = field(default_factory=list)
    score_windows: dict[str, ScoreWindow] = field(default_factory=dict)


def list_snapshots(folder: Path) -> list[Path]:
    """Published snapshots, oldest first (the timestamp in the name sorts)."""
    return sorted(folder.glob(SNAPSHOT_GLOB))


def _score_window(con, source: str, score_days: int) -> tuple[str, dict, ScoreWindow]:
    """The filter copying the newest ``score_days`` as-of dates of ``source`` (all: 0)."""
    dates = [r[0] for r in con.execute(f"select distinct as_of_date from {source}").fetchall()]
    dates = sorted((d for d in dates if d is not None), reverse=True)
    kept = dates[:score_days] if score_days else dates
    first, last = (kept[-1], kept[0]) if kept else (None, None)
    window = ScoreWindow(len(kept), len(dates), first, last)
    if score_days and len(kept) < len(dates):
        return " where as_of_date >= $first", {"first": kept[-1]}, window
    return "", {}, window


def _copy_schemas(
    con, target: Path, schemas: tuple[str, ...], score_days: int = 0
) -> tuple[dict[str, int], object, dict[str, ScoreWindow]]:
    """Copy ``schemas`` of the connection's database into a new file ``target`` (the score
    tables for their newest ``score_days`` as-of dates)."""
    db = con.execute("select current_database()").fetchone()[0]
    relations = con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = $db "
        "and schema_name in (select unnest($s)) union all "
        "select schema_name, view_name from duckdb_views() where database_name = $db "
        "and schema_name in (select unnest($s)) and not internal order by 1, 2",
        {"db": db, "s": list(schemas)},
    ).fetchall()
    dated = {
        f"{r[0]}.{r[1]}"
        for r in con.execute(
            "select schema_name, table_name from duckdb_columns() where database_name = $db "
            "and column_name = 'as_of_date'",
            {"db": db},
        ).fetchall()
    }
    # The copies need not keep the source's row order (no SQL result depends on it); DuckDB
    # then writes each table from both threads: 8.3 -> 6.6 s for the marts of 1M customers.
    con.execute("set preserve_insertion_order = false")
    con.execute(f"attach {sql_literal(str(target))} as _snap (read_write)")
    try:
        con.execute("begin transaction")
        tables, windows = {}, {}
        for schema, name in relations:
            key = f"{schema}.{name}"
            con.execute(f'create schema if not exists _snap."{schema}"')
            source = f'"{db}"."{schema}"."{name}"'
            where, params = "", {}
            if key in SCORE_TABLES and key in dated:
                where, params, windows[key] = _score_window(con, source, score_days)
            copy = f'_snap."{schema}"."{name}"'
            con.execute(f"create table {copy} as select * from {source}{where}", params)
            tables[key] = con.execute(f"select count(*) from {copy}").fetchone()[0]
        as_of = None
        if "marts.customer_segments" in tables:
            as_of = con.execute('select max(as_of_date) from _snap.marts."customer_segments"')
            as_of = as_of.fetchone()[0]
        firsts = [w.first for w in windows.values() if w.first]
        lasts = [w.last for w in windows.values() if w.last]
        con.execute(
            "create table _snap.main.snapshot_info as select "
            "cast(now() at time zone 'UTC' as timestamp) as published_at, "
            "cast($d as date) as as_of_date, $n as table_count, "
            "cast($k as integer) as score_days, cast($f as date) as score_first_as_of_date, "
            "cast($l as date) as score_last_as_of_date",
            {
                "d": as_of,
                "n": len(tables),
                "k": score_days,
                "f": min(firsts) if firsts else None,
                "l": max(lasts) if lasts else None,
            },
        )
        con.execute(
            "create table _snap.main.snapshot_tables (table_name varchar, row_count bigint, "
            "as_of_dates integer, first_as_of_date date, last_as_of_date date, coverage varchar)"
        )
        rows = []
        for key, n in tables.items():
            w = windows.get(key)
            if w is None:
                rows.append((key, n, None, None, None, "all rows"))
            else:
                rows.append((key, n, w.dates_copied, w.first, w.last, w.coverage))
        if rows:
            insert = "insert into _snap.main.snapshot_tables values (?, ?, ?, ?, ?, ?)"
            con.executemany(insert, rows)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.execute("detach _snap")  # checkpoints: no .wal left next to the file
    return tables, as_of, windows


def _point_stable(snapshot: Path, stable: Path) -> None:
    """Atomically make ``stable`` the same file as ``snapshot``."""
    tmp = stable.with_name(f".{stable.name}.{snapshot.stem}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(snapshot, tmp)
    except OSError:  # no hard links on this file system: a copy, still swapped atomically
        shutil.copy2(snapshot, tmp)
    os.replace(tmp, stable)


def _prune(folder: Path, keep: int, current: Path) -> list[Path]:
    """Delete all but the newest ``keep`` snapshots and stale temp files. Readers with a
    deleted snapshot open keep reading it (Linux keeps the inode until they close)."""
    removed = [p for p in list_snapshots(folder)[:-keep] if p != current]
    cutoff = time.time() - 3600
    removed += [p for p in folder.glob(".*.tmp") if p.stat().st_mtime < cutoff]
    for p in removed:
        p.unlink(missing_ok=True)
        p.with_name(p.name + ".wal").unlink(missing_ok=True)
    return removed


def publish_snapshot(
    warehouse_path: Path,
    folder: Path,
    keep: int = DEFAULT_KEEP,
    schemas: tuple[str, ...] = ANALYST_SCHEMAS,
    lock_timeout_s: float = 120.0,
    score_days: int = DEFAULT_SCORE_DAYS,
) -> PublishResult:
    """Publish a consistent copy of ``schemas`` of the warehouse to ``folder``.

    Parameters
    ----------
    warehouse_path : the DuckDB warehouse, opened read-only (waits up to
        ``lock_timeout_s`` for a writer outside Dagster to finish).
    folder : the published folder (created if missing).
    keep : snapshots kept, the new one included.
    schemas : the schemas copied; every view in them is materialised as a table.
    score_days : the score-history tables (:data:`SCORE_TABLES`) are copied for their
        newest ``score_days`` as-of dates (``0``: all of them).
    """
    if score_days < 0:
        raise ValueError(f"score_days must be >= 0, got {score_days}")
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    snapshot = folder / f"lifecycle-{stamp}.duckdb"
    building = folder / f".building-{stamp}.duckdb.tmp"
    try:
        with warehouse.connect(
            warehouse_path, read_only=True, lock_timeout_s=lock_timeout_s
        ) as con:
            tables, as_of, windows = _copy_schemas(con, building, schemas, score_days)
        with building.open("rb") as f:
            os.fsync(f.fileno())
        os.rename(building, snapshot)
    finally:
        building.unlink(missing_ok=True)
        building.with_name(building.name + ".wal").unlink(missing_ok=True)
    stable = folder / STABLE_NAME
    _point_stable(snapshot, stable)
    fsync_dir(folder)
    removed = _prune(folder, max(1, keep), snapshot)
    return PublishResult(
        snapshot=snapshot,
        stable_path=stable,
        tables=tables,
        as_of_date=as_of,
        bytes=snapshot.stat().st_size,
        seconds=time.perf_counter() - started,
        removed=removed,
        score_windows=windows,
    )
