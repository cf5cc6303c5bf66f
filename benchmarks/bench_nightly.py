"""Benchmark: cost of a nightly incremental dbt build at two history sizes.

Run on demand:  uv run python benchmarks/bench_nightly.py [--years 1 2]
                [--customers-per-year 20000] [--workdir /tmp/bench_nightly]

For each history size the simulator writes a landing zone ending on the same day, with the
number of customers proportional to the years simulated and no sign-up growth (so a day
brings about the same new data whatever the history). Every day but the last is loaded and
built (first run: full build); then the last day is loaded and the nightly run is timed:
``dbt build --vars '{"min_date": D, "max_date": D}'`` (models + data tests, as Dagster runs
it). For comparison ``dbt build --full-refresh`` is timed on the same state. Printed: wall
times and the execution time of the incrementally built models (fct_orders,
int_population_gap_monthly, int_lifecycle_spells, lifecycle_daily), and the ratio between
the two history sizes. Also printed: the time to evaluate the upstream views the incremental
models read (int_orders, int_customer_purchase_days, int_customers): they are evaluated over
the whole history on every run, whatever the incremental filter.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

import duckdb
from dbt.cli.main import dbtRunner

from orchestration.contract import SOURCES
from orchestration.ingest import load_partitions
from orchestration.warehouse import ensure_ml_tables
from simulator.config import SimulatorConfig
from simulator.writer import run as simulate

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
END = dt.date(2025, 12, 31)
INCREMENTAL = (
    "fct_orders",
    "int_population_gap_monthly",
    "int_lifecycle_spells",
    "lifecycle_daily",
)


def load(path: Path, landing: Path, first: dt.date, last: dt.date) -> None:
    """Load partitions first..last of every source with the real ingest."""
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    with duckdb.connect(str(path)) as con:
        ensure_ml_tables(con)
        for source in SOURCES:
            load_partitions(con, source, days, landing)


def dbt_build(path: Path, target: Path, *args: str) -> tuple[float, dict[str, float]]:
    """Run ``dbt build`` on ``path``; return (wall seconds, execution seconds per model)."""
    os.environ["LIFECYCLE_WAREHOUSE"] = str(path)
    cli = ["build", "--exclude", "test_type:unit", "--project-dir", str(PROJECT_DIR)]
    cli += ["--profiles-dir", str(PROJECT_DIR), "--target-path", str(target)]
    cli += ["--log-path", str(target), "--quiet", *args]
    start = time.perf_counter()
    result = dbtRunner().invoke(cli)
    wall = time.perf_counter() - start
    if not result.success:
        raise RuntimeError(f"dbt build failed: {result.exception}")
    models = {
        r.node.name: r.execution_time for r in result.result if r.node.resource_type == "model"
    }
    return wall, models


def upstream_view_seconds(path: Path) -> float:
    """Seconds to evaluate the upstream views once each (best of three)."""
    views = ("int_orders", "int_customer_purchase_days", "int_customers")
    total = 0.0
    with duckdb.connect(str(path)) as con:
        for view in views:
            runs = []
            for _ in range(3):
                start = time.perf_counter()
                con.execute(f"create or replace temp table _t as from intermediate.{view}")
                runs.append(time.perf_counter() - start)
            total += min(runs)
    return total


def measure(years: int, customers_per_year: int, workdir: Path) -> dict[str, float]:
    """Simulate ``years`` of history, build it, time the nightly run and a full refresh."""
    start = END - dt.timedelta(days=365 * years - 1)
    landing = workdir / f"landing_{years}y"
    config = SimulatorConfig(
        customers=customers_per_year * years, start=start, end=END, annual_signup_growth=0.0
    )
    summary = simulate(config, landing, truth_dir=workdir / f"truth_{years}y", fmt="parquet")
    warehouse = workdir / f"warehouse_{years}y.duckdb"
    for stale in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
        stale.unlink(missing_ok=True)
    target = workdir / f"target_{years}y"
    before = END - dt.timedelta(days=1)
    load(warehouse, landing, start, before)
    dbt_build(warehouse, target)  # first run: everything from scratch
    load(warehouse, landing, END, END)
    with duckdb.connect(str(warehouse)) as con:
        new_rows = con.execute(
            "select count(*) from raw.orders where _partition_date = ?", [END]
        ).fetchone()[0]
    day = END.isoformat()
    nightly, nightly_models = dbt_build(
        warehouse, target, "--vars", f'{{"min_date": "{day}", "max_date": "{day}"}}'
    )
    views = upstream_view_seconds(warehouse)
    full, full_models = dbt_build(warehouse, target, "--full-refresh")
    return {
        "order_rows": summary["rows"]["orders"],
        "new_order_rows": new_rows,
        "nightly_wall": nightly,
        "nightly_incremental_models": sum(nightly_models[m] for m in INCREMENTAL),
        "nightly_all_models": sum(nightly_models.values()),
        "upstream_views": views,
        "full_wall": full,
        "full_incremental_models": sum(full_models[m] for m in INCREMENTAL),
        "full_all_models": sum(full_models.values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", type=int, nargs=2, default=[1, 2])
    ap.add_argument("--customers-per-year", type=int, default=20000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_nightly"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = {y: measure(y, args.customers_per_year, args.workdir) for y in args.years}
    small, large = args.years
    print(f"\nnightly dbt build (one new day) vs full refresh, history {small}y vs {large}y")
    print(f"{'figure':<34}{f'{small}y':>12}{f'{large}y':>12}{'ratio':>8}")
    for key in results[small]:
        a, b = results[small][key], results[large][key]
        unit = "" if "rows" in key else " s"
        print(f"{key + unit:<34}{a:>12,.2f}{b:>12,.2f}{b / a:>8.2f}")


if __name__ == "__main__":
    main()
