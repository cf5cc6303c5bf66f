"""Definitions every asset shares: settings, the daily partitions, pools and resources."""

import datetime as dt
import os
from pathlib import Path

import dagster as dg

from orchestration import warehouse
from orchestration.settings import load_settings

SETTINGS = load_settings()
# dbt's profile reads the warehouse path from the environment; give it the resolved one.
os.environ["LIFECYCLE_WAREHOUSE"] = str(SETTINGS.warehouse)

# One DuckDB file allows one writer: every asset that writes it claims this pool, whose
# limit is 1 in the instance configuration (dagster.yaml written by `make setup`).
WAREHOUSE_POOL = "duckdb_warehouse"

DAILY = dg.DailyPartitionsDefinition(
    start_date=SETTINGS.partitions_start.isoformat(),
    timezone=SETTINGS.timezone,
)

# A range of days is processed in one run (a backfill is one run, not one per day).
SINGLE_RUN = dg.BackfillPolicy.single_run()


# Tags of a ``refresh`` run: the days loaded by the ingest run it follows (orchestration/defs/
# follow.py), so dbt's incremental window covers them although the run loads nothing.
MIN_DATE_TAG = "lifecycle/min_date"
MAX_DATE_TAG = "lifecycle/max_date"


def run_day_range(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date] | None:
    """The days the run loads (its partition or partition range), read from the run's tags
    so that unpartitioned assets downstream of the ingest know them too; for a ``refresh``
    run, the days loaded by the ingest run it follows."""
    tags = context.run.tags
    first = (
        tags.get("dagster/asset_partition_range_start")
        or tags.get("dagster/partition")
        or tags.get(MIN_DATE_TAG)
    )
    last = (
        tags.get("dagster/asset_partition_range_end")
        or tags.get("dagster/partition")
        or tags.get(MAX_DATE_TAG)
    )
    if not first or not last:
        return None
    return dt.date.fromisoformat(first), dt.date.fromisoformat(last)


def partition_dates(context: dg.AssetExecutionContext) -> list[dt.date]:
    """Every day of the run's partition (range), ascending."""
    return [dt.date.fromisoformat(k) for k in context.partition_keys]


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (``LIFECYCLE_WAREHOUSE``)."""

    path: str

    def connect(self, read_only: bool = False):
        return warehouse.connect(Path(self.path), read_only=read_only)
