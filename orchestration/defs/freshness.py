"""Freshness of ``raw.orders``: the ``orders_fresh`` check and its own daily schedule.

``orders_fresh`` (error, not blocking, so a backfill of old days still runs): the newest
partition is at most one day older than yesterday in ``LIFECYCLE_TIMEZONE``. It runs with
every ingest of orders and also alone every day at ``LIFECYCLE_FRESHNESS_TIME`` (07:00), so
that a night that did not run at all is noticed. Like the other checks it opens the
warehouse read-only under the warehouse pool; a lock or I/O error is retried.
"""

import datetime as dt
import os
from zoneinfo import ZoneInfo

import dagster as dg

from orchestration.defs.retries import TRANSIENT_RETRY, non_transient
from orchestration.defs.shared import SETTINGS, WAREHOUSE_POOL, WarehouseResource

ORDERS_KEY = dg.AssetKey(["raw", "orders"])
FRESHNESS_MAX_LAG_DAYS = 1


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
    asset_checks=[orders_fresh], jobs=[freshness_job], schedules=[freshness_schedule]
)
