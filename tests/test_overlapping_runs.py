"""Overlapping runs on a real Dagster instance (webserver + daemon, QueuedRunCoordinator,
pool ``duckdb_warehouse`` limited to 1 by deploy/dagster.yaml): a ``nightly`` run for one
day (as the schedule starts it) and an ingest-only run for a range of three days (as a backfill
or a manual launch), submitted at once through the GraphQL API, plus the ``refresh`` run the
ingest-only run is followed by. Every run
succeeds, no step of the pool overlaps another, and the warehouse holds every day."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from dagster_server import PROJECT_ROOT, DagsterStack

from orchestration.contract import SOURCES
from orchestration.warehouse import LOCK_MARKERS, connect

pytestmark = pytest.mark.timeout(600)

POOL = "duckdb_warehouse"
LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on InvalidStepError { invalidStepKey } ... on InvalidOutputError { invalidOutputName }
  ... on RunConfigValidationInvalid { errors { message } } } }"""
POOL_OPS = """query($p: PipelineSelector!) { pipelineOrError(params: $p) { ... on Pipeline {
  solidHandles { solid { definition { ... on SolidDefinition { name pool } } } } } } }"""


def selector(job: str) -> dict:
    return {
        "repositoryLocationName": PROJECT_ROOT.name,
        "repositoryName": "__repository__",
        "jobName": job,
    }


def launch(stack: DagsterStack, job: str, tags: dict[str, str], assets=None) -> str:
    params = {
        "selector": {**selector(job), **({"assetSelection": assets} if assets else {})},
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
    }
    result = stack.graphql(LAUNCH, {"p": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def pool_ops(stack: DagsterStack) -> set[str]:
    """Ops of the ``nightly`` job (every asset and check) that claim the warehouse pool."""
    p = {**selector("nightly"), "pipelineName": "nightly"}
    p.pop("jobName")
    handles = stack.graphql(POOL_OPS, {"p": p})["pipelineOrError"]["solidHandles"]
    return {
        h["solid"]["definition"]["name"]
        for h in handles
        if h["solid"]["definition"]["pool"] == POOL
    }


def queued_at(stack: DagsterStack, run_id: str) -> float:
    """When the run entered the queue (its RUN_ENQUEUED event)."""
    import dagster as dg

    with stack.instance() as instance:
        (record,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED)
    return record.timestamp


def step_intervals(stack: DagsterStack, run_ids: list[str]) -> tuple[list, list[str]]:
    """``(start, end, run, step)`` of every step, and every message mentioning a lock or a
    retry, from the runs' event logs."""
    import dagster as dg

    E = dg.DagsterEventType
    intervals, problems = [], []
    with stack.instance() as instance:
        for run_id in run_ids:
            started: dict[str, float] = {}
            for record in instance.all_logs(run_id):
                text = record.user_message or ""
                if any(m in text for m in LOCK_MARKERS):
                    problems.append(f"{run_id}: {text[:300]}")
                event = record.dagster_event
                if event is None:
                    continue
                if event.event_type == E.STEP_UP_FOR_RETRY:
                    problems.append(f"{run_id}: {record.step_key} retried: {text[:300]}")
                if event.event_type == E.STEP_START:
                    started[record.step_key] = record.timestamp
                elif event.event_type in (E.STEP_SUCCESS, E.STEP_FAILURE):
                    start = started.pop(record.step_key)
                    intervals.append((start, record.timestamp, run_id, record.step_key))
    return intervals, problems


def test_overlapping_runs_share_the_warehouse(dagster_stack: DagsterStack) -> None:
    stack = dagster_stack
    day_a, first, last = stack.days[-10], stack.days[-9], stack.days[-7]
    ingest_keys = [{"path": ["raw", source]} for source in SOURCES]
    requests = [
        ("nightly", {"dagster/partition": day_a.isoformat()}, None),
        (
            "__ASSET_JOB",
            {
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat(),
            },
            ingest_keys,
        ),
    ]
    # Submitted at the same moment (each launch takes seconds: the run's plan is built).
    with ThreadPoolExecutor(len(requests)) as pool:
        run_ids = list(pool.map(lambda r: launch(stack, *r), requests))

    runs = stack.wait_runs(run_ids, timeout_s=420)
    # The ingest-only run is followed by one refresh (sensor refresh_after_ingest).
    refresh = stack.wait_for_run({"lifecycle/after_run": run_ids[1]}, timeout_s=120)
    runs += stack.wait_runs([refresh["runId"]], timeout_s=300)
    all_ids = [r["runId"] for r in runs]
    assert [r["status"] for r in runs] == ["SUCCESS"] * 3, stack.failures(all_ids)

    intervals, problems = step_intervals(stack, all_ids)
    assert not problems, problems
    in_pool = pool_ops(stack)
    pooled = sorted(i for i in intervals if i[3] in in_pool)
    assert {i[2] for i in pooled} == set(all_ids), "every run ran pool steps"
    # The two runs were waiting together (so the pool, not chance, kept their steps
    # apart: the coordinator may hold a run in the queue while the pool is busy) ...
    enqueued = [queued_at(stack, r) for r in run_ids]
    ended = [max(i[1] for i in intervals if i[2] == r) for r in run_ids]
    assert max(enqueued) < min(ended), (enqueued, ended)
    # ... and no two steps of the pool ever ran at the same time, across all runs.
    for before, after in zip(pooled, pooled[1:], strict=False):
        assert after[0] >= before[1], f"pool steps overlap: {before} and {after}"

    loaded = stack.loaded_rows()
    for source in SOURCES:
        for day in (day_a, *stack.days[-9:-6]):
            assert loaded[source].get(day, 0) == stack.landed_rows(source, day), f"{source} {day}"
        assert stack.days[-6] not in loaded[source], f"{source}: a day no run selected loaded"
    with connect(stack.warehouse, read_only=True) as con:
        newest = con.execute("select max(_partition_date) from raw.orders").fetchone()[0]
        as_of = con.execute("select max(as_of_date) from marts.customer_segments").fetchone()[0]
    assert as_of == newest
