"""The nightly job and its schedule: the whole chain for yesterday's partition, at
LIFECYCLE_SCHEDULE_TIME in the partitions' time zone (LIFECYCLE_TIMEZONE)."""

import dagster as dg

from orchestration.defs.shared import SETTINGS

nightly = dg.define_asset_job(
    "nightly",
    selection=dg.AssetSelection.all(),
    description="Ingest, dbt warehouse, churn and CLV models, segments - for one day.",
)

nightly_schedule = dg.build_schedule_from_partitioned_job(
    nightly,
    name="nightly_schedule",
    hour_of_day=SETTINGS.schedule_time.hour,
    minute_of_hour=SETTINGS.schedule_time.minute,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(jobs=[nightly], schedules=[nightly_schedule])
