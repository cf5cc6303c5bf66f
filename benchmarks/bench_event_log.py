"""Benchmark: writing a real run's Dagster events with Dagster's SQLite event log and with
``orchestration.instance_storage`` (connections kept open).

Run on demand, after a run exists in the instance (e.g. after ``make run``):
    uv run python benchmarks/bench_event_log.py [--home .dagster_home] [--run-id ID] [--repeat 3]

The events of the run (default: the newest with an event log in ``<home>/history/runs``) are
read and written again, in order, into a new temporary instance directory by each storage;
the medians of ``--repeat`` passes are printed, with the ratio. Dagster's own storage then
reads every event back from the pooled storage's files.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import deserialize_value

from orchestration.instance_storage import PooledSqliteStorage


def run_events(home: Path, run_id: str | None) -> tuple[str, list]:
    runs = home / "history" / "runs"
    shards = [p for p in runs.glob("*.db") if p.stem != "index"]
    if run_id is None:
        if not shards:
            raise SystemExit(f"no run event logs in {runs}: run the pipeline first (make run)")
        run_id = max(shards, key=lambda p: p.stat().st_mtime).stem
    uri = f"file:{runs / f'{run_id}.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as con:
        rows = con.execute("select event from event_logs order by id").fetchall()
    return run_id, [deserialize_value(r[0]) for r in rows]


def write_all(storage_class, events: list) -> tuple[float, str, str]:
    """Seconds to store ``events`` as a new run in a new instance directory."""
    base = tempfile.mkdtemp(prefix="bench_event_log_")
    storage = storage_class.from_local(base).event_log_storage
    run_id = str(uuid.uuid4())
    renamed = [e._replace(run_id=run_id) for e in events]
    started = time.perf_counter()
    for event in renamed:
        storage.store_event(event)
    seconds = time.perf_counter() - started
    storage.dispose()
    return seconds, base, run_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(".dagster_home"))
    parser.add_argument("--run-id")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    run_id, events = run_events(args.home, args.run_id)
    print(f"run {run_id}: {len(events):,} events")
    medians = {}
    for cls in (DagsterSqliteStorage, PooledSqliteStorage):
        passes = [write_all(cls, events) for _ in range(args.repeat)]
        medians[cls.__name__] = statistics.median(p[0] for p in passes)
        print(f"  {cls.__name__:<22} {medians[cls.__name__]:7.2f} s median of {args.repeat}")
    base, new_run = passes[-1][1], passes[-1][2]
    read = DagsterSqliteStorage.from_local(base).event_log_storage.get_logs_for_run(new_run)
    print(f"  read back by Dagster's own storage: {len(read):,} of {len(events):,} events")
    ratio = medians["DagsterSqliteStorage"] / medians["PooledSqliteStorage"]
    print(f"  kept-open connections: x{ratio:.1f} faster")


if __name__ == "__main__":
    main()
