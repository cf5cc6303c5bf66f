"""Downstream follows ingest: after a successful ingest-only run, refresh everything else once.

The ``nightly`` job (schedule, landing sensor) runs the whole chain in one run. A run that
materializes only ingest assets - a backfill of a range of days launched from the UI, a
re-run of one day - leaves the warehouse, models and segments behind. ``refresh_after_ingest``
watches successful runs of this code location; for an ingest-only run it launches the
``refresh`` job (dbt, churn and CLV models, segments, exports, report) once, as of the newest
loaded day, with the run's day range as dbt's incremental window (tags ``lifecycle/min_date``
and ``lifecycle/max_date``, read by :func:`orchestration.defs.shared.run_day_range`).

Why an explicit job and not declarative automation (``AutomationCondition.eager()``): the
chain must run once per batch of loaded days, in order, as one run holding the warehouse pool
(one DuckDB writer); eager conditions evaluate asset by asset, would start dbt while other
ingest partitions of the same backfill are still pending, and an unpartitioned asset behind
daily partitions never satisfies "no missing parent partition" for days before the first
landing. A run-status sensor gives one predictable refresh per ingest run, with a run key
so that a re-evaluated sensor never launches it twice.
"""

from collections.abc import Mapping, Set

import dagster as dg

from orchestration.defs.shared import MAX_DATE_TAG, MIN_DATE_TAG

INGEST_GROUP = "ingest"
TRIGGER_TAG = "lifecycle/trigger"

refresh = dg.define_asset_job(
    "refresh",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups(INGEST_GROUP),
    description=(
        "dbt warehouse, churn and CLV models, segments and deliveries as of the newest loaded "
        "day, without loading anything (started after a backfill or a re-run of ingest)."
    ),
)


def is_ingest_key(key: dg.AssetKey) -> bool:
    """Ingest assets are keyed ``raw/<source>``."""
    return key.path[0] == "raw" and len(key.path) == 2


def refresh_request(
    run_id: str, asset_selection: Set[dg.AssetKey] | None, tags: Mapping[str, str]
) -> dg.RunRequest | None:
    """The ``refresh`` request that follows a successful run, or None when the run is not an
    ingest-only run (a ``nightly`` run already refreshed everything; a refresh run must not
    start another)."""
    if not asset_selection or not all(is_ingest_key(k) for k in asset_selection):
        return None
    first = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    last = tags.get("dagster/asset_partition_range_end") or tags.get("dagster/partition")
    range_tags = {MIN_DATE_TAG: first, MAX_DATE_TAG: last} if first and last else {}
    return dg.RunRequest(
        run_key=f"refresh-after-{run_id}",
        tags={TRIGGER_TAG: "refresh_after_ingest", "lifecycle/after_run": run_id, **range_tags},
    )


def materialized_keys(instance: dg.DagsterInstance, run_id: str) -> set[dg.AssetKey]:
    """The assets a run materialized (for runs of a job, which carry no asset selection)."""
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return {e.dagster_event.asset_key for e in events if e.dagster_event}


@dg.run_status_sensor(
    name="refresh_after_ingest",
    run_status=dg.DagsterRunStatus.SUCCESS,
    request_job=refresh,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "After a successful ingest-only run (a UI backfill, a re-run of a day), launches the "
        "refresh job once: dbt, models, segments and deliveries as of the newest loaded day."
    ),
)
def refresh_after_ingest(context: dg.RunStatusSensorContext):
    run = context.dagster_run
    selection = run.asset_selection or materialized_keys(context.instance, run.run_id)
    request = refresh_request(run.run_id, selection, run.tags)
    if request is None:
        return dg.SkipReason(f"run {run.run_id} ({run.job_name}) was not an ingest-only run")
    return request


defs = dg.Definitions(jobs=[refresh], sensors=[refresh_after_ingest])
