"""Python asset checks: row reconciliation and marts vs staging (freshness: ``freshness.py``).

- ``raw/<source>``: ``<source>_rows_reconcile`` (blocking) recounts the landing file of
  each checked day independently of the ingest (Python's csv reader, a line count for
  JSON lines, the Parquet footer) and requires landed = rows in ``raw.<source>`` + rows in
  ``raw.<source>_rejected`` for that day: no row lost or duplicated. Checked days: the
  run's partitions (the newest ``RECONCILE_MAX_DAYS`` of a long backfill), otherwise the
  newest day with rows in either table.
- ``marts/fct_orders``: ``orders_match_staging`` (blocking): one row per order of
  ``staging.stg_orders`` up to the as-of date, no more, no less, no duplicates.
- ``marts/dim_customers``: ``customers_cover_staging`` (blocking): every customer with an
  order in ``staging.stg_orders`` up to the as-of date has a row.

Checks open the warehouse read-only and claim the warehouse pool, so no writer holds the
DuckDB file while they read it; a lock or I/O error is retried (``TRANSIENT_RETRY``), a
missing table or a bad query is not.
"""

import csv
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb

from orchestration.contract import SOURCES
from orchestration.defs.retries import TRANSIENT_RETRY, non_transient
from orchestration.defs.shared import SETTINGS, WAREHOUSE_POOL, WarehouseResource
from orchestration.ingest import landing_file, q

RECONCILE_MAX_DAYS = 7


def count_landing_rows(path: Path) -> int:
    """Data rows of a landing file, counted the way the contract defines them: CSV records
    after the header (blank lines skipped, quoted newlines inside a record), JSON lines
    (every line, a blank one is a malformed row), Parquet rows."""
    fmt = path.suffix.lstrip(".")
    if fmt == "parquet":
        return duckdb.execute(
            "select coalesce(sum(num_rows), 0) from parquet_file_metadata(?)", [str(path)]
        ).fetchone()[0]
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        if fmt == "jsonl":
            return sum(1 for _ in fh)
        return max(sum(1 for record in csv.reader(fh) if record) - 1, 0)


def reconcile_days(
    con: duckdb.DuckDBPyConnection, source: str, days: list[dt.date], landing_dir: Path
) -> list[dict]:
    """Per day: landed rows (recounted), loaded and rejected rows, and whether they add up."""
    counts = {}
    for table in (source, f"{source}_rejected"):
        counts[table] = dict(
            con.execute(
                f"select _partition_date, count(*) from raw.{q(table)} "
                "where _partition_date in (select unnest($d)) group by 1",
                {"d": days},
            ).fetchall()
        )
    rows = []
    for day in days:
        path = landing_file(landing_dir, source, day)
        landed = count_landing_rows(path) if path else 0
        loaded = counts[source].get(day, 0)
        rejected = counts[f"{source}_rejected"].get(day, 0)
        rows.append(
            {
                "day": day.isoformat(),
                "file": str(path) if path else None,
                "landed": landed,
                "loaded": loaded,
                "rejected": rejected,
                "ok": landed == loaded + rejected,
            }
        )
    return rows


def run_tags(context: dg.AssetCheckExecutionContext) -> dict[str, str]:
    """The run's tags (empty when the check is invoked directly, outside a run)."""
    try:
        return dict(context.run.tags)
    except Exception:  # direct invocation has no run
        return {}


def days_to_reconcile(
    context: dg.AssetCheckExecutionContext, con: duckdb.DuckDBPyConnection, source: str
) -> list[dt.date]:
    tags = run_tags(context)
    first = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    last = tags.get("dagster/asset_partition_range_end") or tags.get("dagster/partition")
    if first and last:
        start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
        start = max(start, end - dt.timedelta(days=RECONCILE_MAX_DAYS - 1))
        return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    newest = con.execute(
        f"select max(d) from (select max(_partition_date) as d from raw.{q(source)} union all "
        f"select max(_partition_date) from raw.{q(source + '_rejected')})"
    ).fetchone()[0]
    return [newest] if newest else []


def build_reconciliation_check(
    source: str, landing_dir: Path = SETTINGS.landing_dir
) -> dg.AssetChecksDefinition:
    """The blocking ``<source>_rows_reconcile`` check of ``raw/<source>``."""

    @dg.asset_check(
        asset=dg.AssetKey(["raw", source]),
        name=f"{source}_rows_reconcile",
        blocking=True,
        pool=WAREHOUSE_POOL,
        retry_policy=TRANSIENT_RETRY,
        description=(
            f"Rows in each checked landing file of `{source}` (recounted) = rows in "
            f"`raw.{source}` + rows in `raw.{source}_rejected` for that day."
        ),
    )
    def _reconcile(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        with non_transient(), warehouse.connect(read_only=True) as con:
            days = days_to_reconcile(context, con, source)
            rows = reconcile_days(con, source, days, landing_dir)
        bad = [r for r in rows if not r["ok"]]
        detail = "; ".join(
            f"{r['day']}: {r['landed']} landed != {r['loaded']} loaded + "
            f"{r['rejected']} rejected ({r['file']})"
            for r in bad
        )
        if bad:
            context.log.error(f"raw.{source} does not reconcile with its landing files: {detail}")
        return dg.AssetCheckResult(
            passed=not bad,
            description=detail or f"{len(rows)} day(s) reconcile",
            metadata={
                "days_checked": len(rows),
                "partition_range": f"{rows[0]['day']}..{rows[-1]['day']}" if rows else "none",
                "rows_landed": sum(r["landed"] for r in rows),
                "rows_loaded": sum(r["loaded"] for r in rows),
                "rows_rejected": sum(r["rejected"] for r in rows),
                "mismatched_days": [r["day"] for r in bad],
            },
        )

    return _reconcile


AS_OF_SQL = "(select max(as_of_date) from intermediate.int_as_of_date)"


def order_consistency(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """fct_orders vs the orders of staging.stg_orders up to the as-of date: one full outer join
    of both sides grouped by order_id (one pass over each table: about 0.7 s at 1M customers,
    2.4 M orders)."""
    row = con.execute(
        f"with s as (select order_id, 1 as staged from staging.stg_orders "
        f"where order_date <= {AS_OF_SQL} group by order_id), "
        "f as (select order_id, count(*) as n from marts.fct_orders group by order_id) "
        "select coalesce(sum(f.n), 0), count(s.staged), "
        "count(*) filter (where f.n is null), "
        "coalesce(sum(f.n) filter (where s.staged is null), 0), "
        "coalesce(sum(f.n), 0) - count(f.order_id) "
        "from s full outer join f on s.order_id = f.order_id"
    ).fetchone()
    return dict(
        zip(("fct_rows", "staged_orders", "missing", "extra", "duplicates"), row, strict=True)
    )


def customer_consistency(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """dim_customers vs the customers with orders in staging.stg_orders up to the as-of."""
    row = con.execute(
        f"with s as (select distinct customer_id from staging.stg_orders "
        f"where order_date <= {AS_OF_SQL}) "
        "select (select count(*) from marts.dim_customers), (select count(*) from s), "
        "(select count(*) from s anti join marts.dim_customers d using (customer_id))"
    ).fetchone()
    return dict(zip(("dim_rows", "staged_customers", "missing"), row, strict=True))


def orders_verdict(n: dict[str, int]) -> tuple[bool, str]:
    passed = n["missing"] == n["extra"] == n["duplicates"] == 0
    return passed, (
        f"fct_orders has {n['fct_rows']} rows for {n['staged_orders']} staged orders: "
        f"{n['missing']} missing, {n['extra']} not in staging, {n['duplicates']} duplicated"
    )


def customers_verdict(n: dict[str, int]) -> tuple[bool, str]:
    passed = n["missing"] == 0 and n["dim_rows"] >= n["staged_customers"]
    return passed, (
        f"dim_customers has {n['dim_rows']} rows; {n['staged_customers']} customers have "
        f"staged orders, {n['missing']} of them missing from dim_customers"
    )


def build_consistency_check(
    mart: str,
    name: str,
    description: str,
    measure: Callable[[duckdb.DuckDBPyConnection], dict[str, int]],
    verdict: Callable[[dict[str, int]], tuple[bool, str]],
) -> dg.AssetChecksDefinition:
    """A blocking check of ``marts.<mart>`` against staging: ``measure`` counts, ``verdict``
    judges the counts (pure functions, unit-tested on their own)."""

    @dg.asset_check(
        asset=dg.AssetKey(["marts", mart]),
        name=name,
        blocking=True,
        pool=WAREHOUSE_POOL,
        retry_policy=TRANSIENT_RETRY,
        description=description,
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with non_transient(), warehouse.connect(read_only=True) as con:
            counts = measure(con)
        passed, text = verdict(counts)
        return dg.AssetCheckResult(passed=passed, description=text, metadata=counts)

    return _check


orders_match_staging = build_consistency_check(
    "fct_orders",
    "orders_match_staging",
    "One fct_orders row per order of staging.stg_orders up to the as-of date.",
    order_consistency,
    orders_verdict,
)
customers_cover_staging = build_consistency_check(
    "dim_customers",
    "customers_cover_staging",
    "Every customer with an order in staging.stg_orders has a dim_customers row.",
    customer_consistency,
    customers_verdict,
)


defs = dg.Definitions(
    asset_checks=[
        *(build_reconciliation_check(s) for s in SOURCES),
        orders_match_staging,
        customers_cover_staging,
    ],
)
