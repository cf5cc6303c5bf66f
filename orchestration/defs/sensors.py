"""Sensors: start a day as soon as its landing files are there; record failed runs.

``landing_sensor`` and the 02:00 ``nightly_schedule`` both run the ``nightly`` job for a
day; they share the work this way:

- the sensor (every 60 s) looks at the last ``LIFECYCLE_LANDING_LOOKBACK_DAYS`` (3) daily
  partitions. A day is *ready* once its ``orders`` file exists (the one required source),
  no file of that day changed in the last 60 s (still being written), and every source
  delivered the day before is there too - or ``LIFECYCLE_LANDING_SETTLE_MINUTES`` (30)
  passed since the newest file of the day, so a source that stopped delivering cannot
  hold the night back forever;
- a ready day whose ``raw/orders`` partition was materialized *after* its newest file
  (by the schedule, a backfill, a manual run) is already up to date: it is marked done
  without a run. So files that arrive late, after the 02:00 run loaded an empty day, are
  picked up by the sensor; files that arrived early are picked up before 02:00;
- every day the sensor handles goes into its cursor (JSON ``{"handled": [days]}``, pruned
  to the look-back window: an older day is never a candidate again) and its run carries
  ``run_key=f"landing-{day}"``, so the sensor never starts a day twice, even if the cursor
  were lost. A file corrected after its day ran is loaded by re-running the day (runbook).

The schedule stays the safety net; when the sensor started a day before 02:00 the
schedule re-runs it, which is idempotent (partitions are replaced) but redundant - to
skip it, use :func:`partition_loaded_at` in the schedule (see the report of issue 6).
The sensor is opt-in: ``LIFECYCLE_LANDING_SENSOR=running`` starts it by default,
otherwise turn it on in the UI (Automation tab).

``run_failure_alert`` (running by default) records every failed run of this code location
in ``<warehouse folder>/run_failures.jsonl`` and posts it to ``LIFECYCLE_ALERT_WEBHOOK_URL``
when set (see :mod:`orchestration.alerts`).
"""

import datetime as dt
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from orchestration import alerts
from orchestration.contract import FILE_FORMATS, SOURCES
from orchestration.defs.schedules import nightly
from orchestration.defs.shared import DAILY, SETTINGS

ORDERS_KEY = dg.AssetKey(["raw", "orders"])
SENSOR_ENV = "LIFECYCLE_LANDING_SENSOR"


@dataclass(frozen=True)
class LandingPolicy:
    """When a landed day is ready to run (see the module docstring)."""

    lookback_days: int = 3
    settle_seconds: float = 30 * 60
    quiet_seconds: float = 60

    @classmethod
    def from_env(cls) -> "LandingPolicy":
        def num(var: str, default: float) -> float:
            raw = os.environ.get(var)
            try:
                return float(raw) if raw else default
            except ValueError as exc:
                raise ValueError(f"{var} must be a number, got {raw!r}") from exc

        return cls(
            lookback_days=int(num("LIFECYCLE_LANDING_LOOKBACK_DAYS", 3)),
            settle_seconds=num("LIFECYCLE_LANDING_SETTLE_MINUTES", 30) * 60,
        )


def day_files(landing_dir: Path, day: dt.date) -> dict[str, Path]:
    """The landing files present for ``day``, by source."""
    found = {}
    for source in SOURCES:
        for ext in FILE_FORMATS:
            if (path := landing_dir / source / f"{day.isoformat()}.{ext}").is_file():
                found[source] = path
                break
    return found


def ready_days(
    landing_dir: Path,
    window: list[dt.date],
    cursor: str | None,
    now: float,
    policy: LandingPolicy,
    loaded_at: Callable[[dt.date], float | None] = lambda day: None,
) -> tuple[list[dt.date], list[dt.date], str]:
    """Which days of ``window`` to start now (pure except for reading the landing dir).

    Returns ``(to_run, up_to_date, new_cursor)``: days to launch, days found already
    loaded after their newest file (marked handled without a run) and the new cursor.
    ``loaded_at(day)`` is the timestamp of the day's last ``raw/orders`` materialization.
    """
    handled = set(json.loads(cursor).get("handled", [])) if cursor else set()
    to_run, up_to_date = [], []
    for day in sorted(window):
        if day.isoformat() in handled:
            continue
        files = day_files(landing_dir, day)
        if "orders" not in files:
            continue
        newest = max(p.stat().st_mtime for p in files.values())
        if now - newest < policy.quiet_seconds:
            continue
        expected = set(day_files(landing_dir, day - dt.timedelta(days=1))) | {"orders"}
        if expected - set(files) and now - newest < policy.settle_seconds:
            continue
        loaded = loaded_at(day)
        (up_to_date if loaded is not None and loaded >= newest else to_run).append(day)
    keep = {d.isoformat() for d in window}
    handled = (handled & keep) | {d.isoformat() for d in to_run + up_to_date}
    return to_run, up_to_date, json.dumps({"handled": sorted(handled)})


def partition_loaded_at(instance: dg.DagsterInstance, day: dt.date) -> float | None:
    """When partition ``day`` of ``raw/orders`` was last materialized (epoch s), or None."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=ORDERS_KEY, asset_partitions=[day.isoformat()]),
        limit=1,
    ).records
    return records[0].timestamp if records else None


def lookback_window(lookback_days: int) -> list[dt.date]:
    """The newest ``lookback_days`` complete daily partitions (days that have ended in
    ``LIFECYCLE_TIMEZONE``)."""
    last = DAILY.get_last_partition_key()
    if last is None:
        return []
    newest = dt.date.fromisoformat(last)
    days = [newest - dt.timedelta(days=i) for i in range(lookback_days)]
    return [d for d in days if d >= SETTINGS.partitions_start]


def build_landing_sensor(
    landing_dir: Path,
    policy: LandingPolicy | None = None,
    name: str = "landing_sensor",
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor starting ``nightly`` for each day of ``landing_dir`` that becomes ready."""
    policy = policy or LandingPolicy()

    @dg.sensor(
        name=name,
        job=nightly,
        minimum_interval_seconds=60,
        default_status=default_status,
        description=(
            "Starts the nightly job for a day once its landing files are complete "
            f"(orders + yesterday's sources, or {policy.settle_seconds / 60:g} min after the "
            f"last file); last {policy.lookback_days} days; never twice per day."
        ),
    )
    def _landing(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        window = lookback_window(policy.lookback_days)
        to_run, up_to_date, cursor = ready_days(
            landing_dir,
            window,
            context.cursor,
            time.time(),
            policy,
            lambda day: partition_loaded_at(context.instance, day),
        )
        for day in up_to_date:
            context.log.info(f"{day}: already loaded after its files landed, not started")
        requests = [
            dg.RunRequest(
                run_key=f"landing-{day}",
                partition_key=day.isoformat(),
                tags={"lifecycle/trigger": "landing_sensor"},
            )
            for day in to_run
        ]
        skip = None if requests else f"no new complete landing day in {len(window)} day(s)"
        return dg.SensorResult(run_requests=requests, cursor=cursor, skip_reason=skip)

    return _landing


def _status_from_env() -> dg.DefaultSensorStatus:
    value = (os.environ.get(SENSOR_ENV) or "stopped").strip().lower()
    if value not in ("running", "stopped"):
        raise ValueError(f"{SENSOR_ENV} must be 'running' or 'stopped', got {value!r}")
    return dg.DefaultSensorStatus.RUNNING if value == "running" else dg.DefaultSensorStatus.STOPPED


landing_sensor = build_landing_sensor(
    SETTINGS.landing_dir, LandingPolicy.from_env(), default_status=_status_from_env()
)

FAILURES_FILE = SETTINGS.warehouse.parent / alerts.FAILURES_FILE_NAME


def error_text(error) -> str:
    """A step error's message followed by its causes' (the user code's own error is
    usually the cause of Dagster's "Error occurred while executing op" wrapper)."""
    messages = []
    while error is not None:
        messages.append(error.message.strip())
        error = error.cause
    return " <- caused by: ".join(messages)


def failure_record_from_context(context: dg.RunFailureSensorContext) -> dict:
    """The alert payload of a failed run: id, job, error, failed steps, partition."""
    run = context.dagster_run
    steps = []
    for event in context.get_step_failure_events():
        error = getattr(event.step_failure_data, "error", None)
        steps.append({"step": event.step_key or "", "error": error_text(error)})
    tags = run.tags
    first = tags.get("dagster/asset_partition_range_start")
    last = tags.get("dagster/asset_partition_range_end")
    partition = tags.get("dagster/partition") or (f"{first}...{last}" if first else None)
    kept = {k: v for k, v in tags.items() if k.startswith(("dagster/", "lifecycle/"))}
    return alerts.failure_record(
        run_id=run.run_id,
        job_name=run.job_name,
        error=context.failure_event.message or "",
        failed_steps=steps,
        partition=partition,
        tags=kept,
    )


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Records every failed run in run_failures.jsonl next to the warehouse and posts it "
        "to LIFECYCLE_ALERT_WEBHOOK_URL when set."
    ),
)
def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
    record = failure_record_from_context(context)
    alerts.record_failure(record, FAILURES_FILE, alerts.webhook_url(), log=context.log)


defs = dg.Definitions(sensors=[landing_sensor, run_failure_alert])
