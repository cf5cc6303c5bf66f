"""Python asset checks: row reconciliation, marts vs staging, freshness of raw.orders.

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
- ``raw/orders``: ``orders_fresh`` (error, not blocking so a backfill of old days still
  runs): the newest partition is at most one day older than yesterday in
  ``LIFECYCLE_TIMEZONE``. It also runs on its own every day at ``LIFECYCLE_FRESHNESS_TIME``
  (07:00) so that a night that did not run at all is noticed.

Checks open the warehouse read-only and claim the warehouse pool, so no writer holds the
DuckDB file while they read it; a lock or I/O error is retried (``TRANSIENT_RETRY``), a
missing table or a bad query is not.
"""

import csv
import datetime as dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb

from orchestration.contract import SOURCES
from orchestration.defs.retries import TRANSIENT_RETRY, non_transient
from orchestration.defs.shared import SETTINGS, WAREHOUSE_POOL, WarehouseResource
from orchestration.ingest import landing_file, q

ORDERS_KEY = dg.AssetKey(["raw", "orders"])
RECONCILE_MAX_DAYS = 7
FRESHNESS_MAX_LAG_DAYS = 1


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
    """fct_orders vs the orders of staging.stg_orders up to the as-of date."""
    row = con.execute(
        f"with s as (select distinct order_id from staging.stg_orders "
        f"where order_date <= {AS_OF_SQL}), f as (select order_id from marts.fct_orders) "
        "select (select count(*) from f), (select count(*) from s), "
        "(select count(*) from s anti join f using (order_id)), "
        "(select count(*) from f anti join s using (order_id)), "
        "(select count(*) - count(distinct order_id) from f)"
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


@dg.asset_check(
    asset=dg.AssetKey(["marts", "fct_orders"]),
    name="orders_match_staging",
    blocking=True,
    pool=WAREHOUSE_POOL,
    retry_policy=TRANSIENT_RETRY,
    description="One fct_orders row per order of staging.stg_orders up to the as-of date.",
)
def orders_match_staging(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with non_transient(), warehouse.connect(read_only=True) as con:
        n = order_consistency(con)
    passed = n["missing"] == n["extra"] == n["duplicates"] == 0
    description = (
        f"fct_orders has {n['fct_rows']} rows for {n['staged_orders']} staged orders: "
        f"{n['missing']} missing, {n['extra']} not in staging, {n['duplicates']} duplicated"
    )
    return dg.AssetCheckResult(passed=passed, description=description, metadata=n)


@dg.asset_check(
    asset=dg.AssetKey(["marts", "dim_customers"]),
    name="customers_cover_staging",
    blocking=True,
    pool=WAREHOUSE_POOL,
    retry_policy=TRANSIENT_RETRY,
    description="Every customer with an order in staging.stg_orders has a dim_customers row.",
)
def customers_cover_staging(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with non_transient(), warehouse.connect(read_only=True) as con:
        n = customer_consistency(con)
    passed = n["missing"] == 0 and n["dim_rows"] >= n["staged_customers"]
    description = (
        f"dim_customers has {n['dim_rows']} rows; {n['staged_customers']} customers have "
        f"staged orders, {n['missing']} of them missing from dim_customers"
    )
    return dg.AssetCheckResult(passed=passed, description=description, metadata=n)


def freshness_verdict(
    newest: dt.date | None, today: dt.date, max_lag_days: int = FRESHNESS_MAX_LAG_DAYS
) -> tuple[bool, str]:
    """Whether the newest partition is at most ``max_lag_days`` older than yesterday."""
    oldest_ok = today - dt.timedelta(days=1 + max_lag_days)
    if newest is None:
        return False, f"raw.orders is empty; expected a partition on or after {oldest_ok}"
    lag = (today - dt.timedelta(days=1) - newest).days
    if newest < oldest_ok:
        return False, (
            f"raw.orders is STALE: newest partition {newest}, expected on or after "
            f"{oldest_ok} (today {today}): {lag} day(s) behind yesterday"
        )
    return True, f"newest partition {newest} ({max(lag, 0)} day(s) behind yesterday, today {today})"


@dg.asset_check(
    asset=ORDERS_KEY,
    name="orders_fresh",
    pool=WAREHOUSE_POOL,
    retry_policy=TRANSIENT_RETRY,
    description=(
        f"The newest raw.orders partition is at most {FRESHNESS_MAX_LAG_DAYS} day older "
        "than yesterday in LIFECYCLE_TIMEZONE."
    ),
)
def orders_fresh(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    with non_transient(), warehouse.connect(read_only=True) as con:
        newest = con.execute("select max(_partition_date) from raw.orders").fetchone()[0]
    today = dt.datetime.now(ZoneInfo(SETTINGS.timezone)).date()
    passed, description = freshness_verdict(newest, today)
    if not passed:
        context.log.error(description)
    return dg.AssetCheckResult(
        passed=passed,
        description=description,
        metadata={
            "newest_partition": str(newest),
            "today": str(today),
            "timezone": SETTINGS.timezone,
        },
    )


def freshness_time() -> dt.time:
    """``LIFECYCLE_FRESHNESS_TIME`` (HH:MM, default 07:00): when the check runs alone."""
    raw = os.environ.get("LIFECYCLE_FRESHNESS_TIME") or "07:00"
    try:
        return dt.time.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"LIFECYCLE_FRESHNESS_TIME must be HH:MM, got {raw!r}") from exc


FRESHNESS_TIME = freshness_time()
freshness_job = dg.define_asset_job(
    "freshness_check",
    selection=dg.AssetSelection.checks(orders_fresh),
    description="Only the raw.orders freshness check (catches a night that did not run).",
)
freshness_schedule = dg.ScheduleDefinition(
    name="freshness_schedule",
    job=freshness_job,
    cron_schedule=f"{FRESHNESS_TIME.minute} {FRESHNESS_TIME.hour} * * *",
    execution_timezone=SETTINGS.timezone,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(
    asset_checks=[
        *(build_reconciliation_check(s) for s in SOURCES),
        orders_match_staging,
        customers_cover_staging,
        orders_fresh,
    ],
    jobs=[freshness_job],
    schedules=[freshness_schedule],
)
