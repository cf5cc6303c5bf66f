"""`make run`: the whole pipeline over every day of the landing zone, then a summary.

One run of the ``nightly`` job over the partition range first..last day: ingest and dbt
process the range in one step each (single-run backfill policy), the models and the
segments are built once, as of the last day. Runs are recorded in ``$DAGSTER_HOME`` so
they show in the UI (`make ui`). Re-running replaces partitions: it never duplicates.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time

import dagster as dg

from orchestration.settings import landing_days, load_settings
from orchestration.warehouse import connect

SUMMARY_METRICS = {
    "churn": (
        "roc_auc",
        "ece",
        "lift_top_decile",
        "baseline_recency_roc_auc",
        "baseline_btyd_roc_auc",
    ),
    "clv": ("r", "alpha", "a", "b", "p", "q", "gamma"),
}


def day_range() -> tuple[dt.date, dt.date]:
    settings = load_settings()
    days = landing_days(settings.landing_dir, "orders")
    if not days:
        sys.exit(
            f"no orders files in {settings.landing_dir / 'orders'}: "
            "set LIFECYCLE_LANDING_DIR to a landing zone (see README, 'Landing contract')"
        )
    return settings.start_date or days[0], days[-1]


def log_level() -> str:
    """``LIFECYCLE_LOG_LEVEL`` (default ``INFO``; ``DEBUG`` prints every Dagster event)."""
    level = os.environ.get("LIFECYCLE_LOG_LEVEL", "INFO").upper()
    levels = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    if level not in levels:
        sys.exit(f"LIFECYCLE_LOG_LEVEL must be one of {', '.join(levels)}, not {level}")
    return level


def run_range(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    first: dt.date,
    last: dt.date,
    raise_on_error: bool = False,
) -> dg.ExecuteInProcessResult:
    """One in-process run of ``job`` over the partition range ``first`` .. ``last``."""
    return job.execute_in_process(
        instance=instance,
        # the console shows warnings and the steps' own messages; every Dagster event
        # (one per partition and source in a backfill) is in the run's log in the UI
        run_config={"loggers": {"console": {"config": {"log_level": log_level()}}}},
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
            "lifecycle/trigger": "make run",
        },
        raise_on_error=raise_on_error,
    )


def run(first: dt.date, last: dt.date) -> dg.ExecuteInProcessResult:
    from orchestration.definitions import defs

    # One planned event per asset for the range, not one per partition (see Makefile).
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    job = defs().resolve_job_def("nightly")
    with dg.DagsterInstance.get() as instance:
        return run_range(job, instance, first, last)


def summary(first: dt.date, last: dt.date, seconds: float) -> str:
    settings = load_settings()
    lines = [
        f"Pipeline finished in {seconds:.0f} s for {first} .. {last}.",
        f"Warehouse: {settings.warehouse}",
    ]
    with connect(settings.warehouse, read_only=True) as con:

        def table(title: str, sql: str) -> None:
            rows = con.execute(sql).fetchall()
            lines.append(f"\n{title}")
            lines.extend(f"  {r[0]:<28} {r[1]:>10,}" for r in rows)

        table(
            "Rows per raw table (loaded / rejected):",
            "select table_name, estimated_size from duckdb_tables() where schema_name = 'raw' "
            "order by 1",
        )
        table(
            "Customers per lifecycle stage (today):",
            "select stage, count(*) from marts.customer_lifecycle_history where is_current "
            "group by 1 order by 2 desc",
        )
        table(
            "Segment sizes:",
            "select segment, count(*) from marts.customer_segments group by 1 order by 2 desc",
        )
        runs = con.execute(
            "select model_kind, model_version, metrics_json, is_champion from ml.model_runs "
            "where as_of_date = $d order by trained_at",
            {"d": last},
        ).fetchall()
        lines.append("\nModels (as of the last day):")
        for kind, version, metrics, is_champion in runs:
            m = json.loads(metrics)
            shown = ", ".join(f"{k}={m[k]:.3f}" for k in SUMMARY_METRICS.get(kind, ()) if k in m)
            flag = "champion" if is_champion else "not promoted"
            lines.append(f"  {kind:<6} {version} ({flag}): {shown}")
    from orchestration.exports import export_dir
    from orchestration.publish import published_dir
    from report import report_dir

    lines.append(
        f"\nReport: {report_dir() / 'latest.html'}\n"
        f"Exports: {export_dir()}/<as-of date>/\n"
        f"Analysts' read-only copy: {published_dir() / 'lifecycle.duckdb'}"
    )
    lines.append(
        "\nOpen the UI: make ui  (http://127.0.0.1:3000, runs and asset history included)\n"
        f"Query: uv run python -c \"import duckdb; print(duckdb.connect('{settings.warehouse}', "
        "read_only=True).sql('select * from marts.customer_segments limit 5'))\""
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--first",
        type=dt.date.fromisoformat,
        help="first day (default: LIFECYCLE_START_DATE or the first landed day)",
    )
    parser.add_argument(
        "--last", type=dt.date.fromisoformat, help="last day (default: the newest landed day)"
    )
    args = parser.parse_args(argv)
    first, last = day_range()
    first, last = args.first or first, args.last or last
    if first > last:
        sys.exit(f"--first {first} is after --last {last}")
    print(f"Running the pipeline over {first} .. {last} ...", flush=True)
    start = time.monotonic()
    result = run(first, last)
    if not result.success:
        failed = [e.message for e in result.all_events if e.is_failure]
        sys.exit("pipeline failed:\n" + "\n".join(m or "" for m in failed))
    print(summary(first, last, time.monotonic() - start))


if __name__ == "__main__":
    main()
