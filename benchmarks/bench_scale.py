"""Benchmark: the whole pipeline at scale - simulator, full backfill, nightly runs, memory.

Run on demand (demo scale = the defaults, 20 000 customers x 2 years):
    uv run python benchmarks/bench_scale.py --customers 1000000 --years 3 --workdir /tmp/bench_scale
    [--backfill-only] [--simulate-only] [--rerun-nightly] [--format csv|parquet|jsonl]
    [--no-parse] [--report <result.json>]

Every step is a subprocess with a private environment under ``--workdir`` (landing zone,
warehouse, models, reports, exports, published copy, ``DAGSTER_HOME`` with a copy of
``deploy/dagster.yaml``; every other LIFECYCLE_/DAGSTER_ variable removed), measured for wall
time, CPU time (user + sys of the whole tree, less sensitive than wall to a busy machine) and
peak RSS of its process tree (``benchmarks/_proc.py``). The pipeline runs are
``python -m orchestration.pipeline --first D1 --last D2``: one run of the ``nightly`` job, as
``make run`` starts it. First ``dbt parse`` refreshes the manifest Dagster reads (as ``make``
does; ``--no-parse`` skips it). Then:

1. the simulator writes ``--years`` ending on ``--end`` in ``--format`` (default csv, the
   simulator's and ``make run``'s format), reused when its completion marker matches;
2. state ``half``: backfill [start, mid-1] in one run, then the nightly run of day ``mid``;
   state ``full`` (fresh warehouse and instance): backfill [start, end-1] in one run - the
   **full backfill** figure, what a first deployment does - then the nightly run of ``end``
   (``--backfill-only``: this backfill alone). Two fresh states cost 1.5 backfills, instead of
   loading the whole history twice. The two nightly runs differ in history (half vs all); the
   daily volume is not quite the same: customers accumulate (sign-ups grow 30 %/year, buyers
   stay alive for a while), so the new order rows and the customers of each nightly day are
   printed, and the cost ratio normalised by both;
3. after each run the Dagster instance gives the seconds of every step, grouped into stages
   (ingest, dbt, models, delivery, checks); the sampled RSS is attributed to the stages by
   time; dbt's run_results.json of the run splits the dbt steps into dbt's own elapsed time
   (models, tests) and the rest (dbt start-up and parse, Dagster's event handling).

Printed: a table per run and per stage, the nightly cost ratio, the dbt split, the slowest dbt
models and the targets (nightly <= 120 s, full backfill <= 900 s, both as process wall time;
peak RSS <= 6 GiB over the pipeline runs) as PASS/MISS. Written:
``<workdir>/result_<customers>x<years>y.json`` (every figure, every step); logs in
``<workdir>/logs``. Caveats: summed RSS counts shared pages once per process (an upper bound)
and a spike shorter than the 0.25 s sampling can be missed (``proc GiB`` is the kernel's exact
peak of the largest single process); DuckDB has no memory_limit set, so it may keep up to 80 %
of RAM as buffer pool: the peak RSS says what it took here, not what it needs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import Measured, run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3
TARGETS = {"nightly_s": 120.0, "backfill_s": 900.0, "peak_rss_gib": 6.0}
STAGES = ("ingest", "dbt", "models", "delivery", "checks")
INGEST_STEPS = {f"raw__{s}" for s in ("customers", "orders", "reviews", "surveys", "checkouts")}


def stage_of(step_key: str) -> str:
    """The stage of a step of the nightly job (asset checks are separate steps)."""
    if step_key in INGEST_STEPS:
        return "ingest"
    if step_key in ("dbt_warehouse", "dbt_segments"):
        return "dbt"
    if step_key.startswith(("ml__", "ml_scores")):
        return "models"
    if step_key.startswith(("delivery__", "reports__")):
        return "delivery"
    return "checks"


def private_env(state: Path, landing: Path, start: dt.date) -> dict[str, str]:
    """The environment of a subprocess: ours minus every LIFECYCLE_/DAGSTER_ variable, plus
    paths under ``state`` (created, with the instance configuration of deploy/)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIFECYCLE_", "DAGSTER_"))}
    home = state / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env.update(
        LIFECYCLE_LANDING_DIR=str(landing),
        LIFECYCLE_WAREHOUSE=str(state / "warehouse" / "lifecycle.duckdb"),
        LIFECYCLE_MODEL_DIR=str(state / "models"),
        LIFECYCLE_REPORT_DIR=str(state / "reports"),
        LIFECYCLE_EXPORT_DIR=str(state / "exports"),
        LIFECYCLE_PUBLISHED_DIR=str(state / "published"),
        LIFECYCLE_START_DATE=start.isoformat(),
        DAGSTER_HOME=str(home),
        DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS="true",
        PYTHONUNBUFFERED="1",
    )
    return env


def measured(cmd: list[str], env: dict[str, str], log: Path) -> Measured:
    """Run one step; stop the benchmark with the log's tail when it fails."""
    print(f"  $ {' '.join(cmd[1:])}", flush=True)
    m = run_measured(cmd, env, ROOT, log)
    print(f"    {m.wall:,.1f} s wall, peak RSS {m.peak_tree_rss / GIB:.2f} GiB", flush=True)
    if m.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        sys.exit(f"{' '.join(cmd)} failed ({m.returncode}), log {log}:\n{tail}")
    return m


def summary_of(m: Measured) -> dict:
    """JSON-friendly figures of one measured subprocess."""
    return {
        "wall_s": m.wall,
        "cpu_s": m.cpu,
        "peak_tree_rss_bytes": m.peak_tree_rss,
        "max_process_rss_bytes": m.max_process_rss,
        "max_processes": m.max_processes,
        "load_before": m.load_before,
        "load_after": m.load_after,
    }


def simulate(args: argparse.Namespace, start: dt.date, env: dict[str, str]) -> tuple[Path, dict]:
    """Step 1: the landing zone (reused when its marker holds the same configuration)."""
    name = f"landing_{args.customers}x{args.years}y_{args.end}_{args.format}_s{args.seed}"
    landing, marker = args.workdir / name, args.workdir / name / "_complete"
    config = {"customers": args.customers, "start": str(start), "end": str(args.end)}
    config |= {"seed": args.seed, "format": args.format}
    if marker.exists() and json.loads(marker.read_text())["config"] == config:
        print(f"simulator: reusing {landing}")
        return landing, json.loads(marker.read_text()) | {"reused": True}
    shutil.rmtree(landing, ignore_errors=True)
    cmd = [sys.executable, "-m", "simulator", "--customers", str(args.customers)]
    cmd += ["--start", str(start), "--end", str(args.end), "--seed", str(args.seed)]
    cmd += ["--out", str(landing), "--truth-dir", str(args.workdir / f"truth_{name}")]
    cmd += ["--format", args.format]
    log = args.workdir / "logs" / "simulator.log"
    print("simulator:")
    m = measured(cmd, env, log)
    text = log.read_text()
    rows = json.loads(text[text.index("{") : text.rindex("}") + 1])["rows"]
    size = sum(f.stat().st_size for f in landing.rglob("*") if f.is_file())
    result = {"config": config, "rows": rows, "landing_bytes": size, **summary_of(m)}
    marker.write_text(json.dumps(result, indent=1))
    return landing, result | {"reused": False}


def dagster_breakdown(home: Path, seen: set[str], m: Measured) -> dict:
    """Steps of the run just finished in the instance at ``home``: seconds and peak RSS."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    # the instance's storage configuration reads $DAGSTER_HOME (deploy/dagster.yaml); this
    # process's own environment is never passed on (private_env drops DAGSTER_ variables)
    os.environ["DAGSTER_HOME"] = str(home)
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        run = next(r for r in instance.get_runs(limit=5) if r.run_id not in seen)
        seen.add(run.run_id)
        record = instance.get_run_record_by_id(run.run_id)
        steps = instance.get_run_step_stats(run.run_id)
    out = {"run_id": run.run_id, "status": str(run.status.value), "steps": {}}
    out["stages"] = {s: {"seconds": 0.0, "peak_rss_bytes": 0} for s in STAGES}
    for s in sorted(steps, key=lambda s: s.start_time or 0):
        seconds = (s.end_time or s.start_time or 0) - (s.start_time or 0)
        peak = m.peak_between(s.start_time or 0, s.end_time or 0)
        stage = out["stages"][stage_of(s.step_key)]
        stage["seconds"] += seconds
        stage["peak_rss_bytes"] = max(stage["peak_rss_bytes"], peak)
        out["steps"][s.step_key] = {"stage": stage_of(s.step_key), "seconds": seconds}
        out["steps"][s.step_key] |= {"peak_rss_bytes": peak, "status": str(s.status.value)}
    run_s = (record.end_time or 0) - (record.start_time or 0)
    step_s = sum(v["seconds"] for v in out["steps"].values())
    out |= {"run_s": run_s, "dagster_overhead_s": run_s - step_s}
    out["process_overhead_s"] = m.wall - run_s  # imports, definitions, the printed summary
    out["dbt"] = dbt_models(run.run_id)
    return out


def dbt_models(run_id: str) -> dict:
    """dbt's own figures for the run (run_results.json of both dbt steps): its elapsed time,
    execution seconds of the models (per model) and of the tests (summed)."""
    out = {"elapsed_s": 0.0, "tests_s": 0.0, "nodes": 0, "models": {}}
    for path in (ROOT / "dbt_project" / "target").glob(f"dbt_*-{run_id[:7]}-*/run_results.json"):
        results = json.loads(path.read_text())
        out["elapsed_s"] += results["elapsed_time"]
        for r in results["results"]:
            out["nodes"] += 1
            if r["unique_id"].startswith("model."):
                out["models"][r["unique_id"].split(".")[-1]] = r["execution_time"]
            else:
                out["tests_s"] += r["execution_time"]
    out["models"] = dict(sorted(out["models"].items(), key=lambda kv: -kv[1]))
    return out


def volume(env: dict[str, str], day: dt.date) -> dict[str, int]:
    """Rows of the warehouse after a run: the day's new order rows, history, customers."""
    with duckdb.connect(env["LIFECYCLE_WAREHOUSE"], read_only=True) as con:
        new, total = con.execute(
            "select count(*) filter (where _partition_date = ?), count(*) from raw.orders", [day]
        ).fetchone()
        customers = con.execute("select count(*) from marts.dim_customers").fetchone()[0]
        scored = con.execute("select count(*) from marts.customer_segments").fetchone()[0]
    return {"new_order_rows": new, "order_rows": total, "customers": customers, "scored": scored}


def pipeline_state(
    args, name: str, landing: Path, start: dt.date, runs: list, fresh: bool = True
) -> dict:
    """A fresh state (unless ``fresh`` is False): one backfill run then one nightly run;
    both measured."""
    state = args.workdir / f"state_{name}"
    if fresh:
        shutil.rmtree(state, ignore_errors=True)
    env = private_env(state, landing, start)
    seen: set[str] = set()
    results = {}
    print(f"state {name}:")
    for kind, first, last in runs:
        cmd = [sys.executable, "-m", "orchestration.pipeline", "--first", str(first)]
        cmd += ["--last", str(last)]
        m = measured(cmd, env, args.workdir / "logs" / f"{kind}_{name}.log")
        run = {"first": str(first), "last": str(last), "days": (last - first).days + 1}
        run |= summary_of(m) | dagster_breakdown(Path(env["DAGSTER_HOME"]), seen, m)
        run |= volume(env, last)
        results[f"{kind}_{name}"] = run
    return results


def ratio(a: float, b: float) -> float:
    return b / a if a else float("nan")


def nightly_ratio(half: dict, full: dict) -> None:
    """Print the cost of the nightly run with the full history relative to half of it."""
    print(f"\nnightly cost, {half['last']} (half history) -> {full['last']} (full history):")
    for key in ("wall_s", "run_s", "cpu_s"):
        print(
            f"  {key:<8} {half[key]:>8.1f} -> {full[key]:>8.1f}  x{ratio(half[key], full[key]):.2f}"
        )
    for stage in STAGES:
        a, b = half["stages"][stage]["seconds"], full["stages"][stage]["seconds"]
        print(f"  {stage:<8} {a:>8.1f} -> {b:>8.1f}  x{ratio(a, b):.2f}  (Dagster steps)")
    a, b = (sum(r["dbt"]["models"].values()) for r in (half, full))
    print(f"  {'dbt models':<8} {a:>6.1f} -> {b:>8.1f}  x{ratio(a, b):.2f}  (execution, dbt's)")
    for key in ("new_order_rows", "customers", "order_rows"):
        per_h, per_f = half["run_s"] / half[key], full["run_s"] / full[key]
        print(
            f"  run s per {key:<15} {half[key]:>11,} -> {full[key]:>11,} rows "
            f"(x{ratio(half[key], full[key]):.2f}): normalised cost x{ratio(per_h, per_f):.2f}"
        )


def report(result: dict) -> None:
    """Print the tables, the nightly cost ratio and the targets."""
    sim, runs = result["simulator"], result["runs"]
    print(f"\n{result['title']}")
    reused = " (reused: measured when written)" if sim["reused"] else ""
    print(
        f"simulator{reused}: {sim['wall_s']:,.1f} s wall, {sim['cpu_s']:,.1f} s CPU, peak RSS "
        f"{sim['peak_tree_rss_bytes'] / GIB:.2f} GiB, landing zone "
        f"{sim['landing_bytes'] / 1e6:,.0f} MB, rows:"
    )
    print("  " + ", ".join(f"{k} {v:,}" for k, v in sim["rows"].items()))
    head = f"{'run':<22}{'days':>6}{'wall s':>9}{'cpu s':>9}{'run s':>9}{'peak GiB':>9}"
    print(f"\n{head}{'proc GiB':>9}{'load':>6}{'new ord':>9}{'orders':>12}{'customers':>11}")
    for name, r in runs.items():
        print(
            f"{name:<22}{r['days']:>6}{r['wall_s']:>9.1f}{r['cpu_s']:>9.1f}{r['run_s']:>9.1f}"
            f"{r['peak_tree_rss_bytes'] / GIB:>9.2f}{r['max_process_rss_bytes'] / GIB:>9.2f}"
            f"{r['load_after']:>6.1f}{r['new_order_rows']:>9,}{r['order_rows']:>12,}"
            f"{r['customers']:>11,}"
        )
    print("\nper stage: seconds in Dagster steps / peak tree RSS GiB while they ran")
    print(f"{'stage':<26}" + "".join(f"{n[:21]:>22}" for n in runs))
    for stage in STAGES:
        cells = [r["stages"][stage] for r in runs.values()]
        print(
            f"{stage:<26}"
            + "".join(f"{c['seconds']:>14.1f} /{c['peak_rss_bytes'] / GIB:>5.2f}" for c in cells)
        )
    for key, label in (
        ("dagster_overhead_s", "dagster (run - steps)"),
        ("process_overhead_s", "process (wall - run)"),
    ):
        print(f"{label:<26}" + "".join(f"{r[key]:>14.1f}{'':>7}" for r in runs.values()))
    if "nightly_half" in runs:
        nightly_ratio(runs["nightly_half"], runs["nightly_full"])
    print("\ndbt: Dagster step seconds = dbt's elapsed time + start, parse and event handling")
    for name, r in runs.items():
        d, step = r["dbt"], r["stages"]["dbt"]["seconds"]
        print(
            f"  {name:<14} steps {step:6.1f} s = dbt {d['elapsed_s']:6.1f} s "
            f"(models {sum(d['models'].values()):6.1f} s, tests {d['tests_s']:6.1f} s, "
            f"{d['nodes']} nodes) + {step - d['elapsed_s']:5.1f} s"
        )
    for name in (n for n in ("nightly_full", "nightly_rerun_full", "backfill_full") if n in runs):
        top = list(runs[name]["dbt"]["models"].items())[:8]
        print(f"slowest dbt models, {name}: " + ", ".join(f"{m} {s:.1f}s" for m, s in top))
    print("\ntargets")
    for label, value, target, unit in result["targets"]:
        verdict = "PASS" if value <= target else "MISS"
        print(f"  {label:<52} {value:>8.2f} {unit} <= {target:g} {unit}  {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=20000)
    ap.add_argument("--years", type=int, default=2)
    ap.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2025, 12, 31))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--format", choices=("csv", "parquet", "jsonl"), default="csv")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_scale"))
    ap.add_argument("--no-parse", action="store_true", help="skip `dbt parse` (make setup's)")
    ap.add_argument(
        "--backfill-only", action="store_true", help="only the full backfill (no nightly runs)"
    )
    ap.add_argument(
        "--simulate-only", action="store_true", help="only write (or reuse) the landing zone"
    )
    ap.add_argument(
        "--rerun-nightly",
        action="store_true",
        help="after a full run: the nightly run of --end again on state_full (e.g. after a "
        "code change), added to the result file as nightly_full_rerun",
    )
    ap.add_argument("--report", type=Path, help="only print the report of this result file")
    args = ap.parse_args()
    if args.report:
        return report(json.loads(args.report.read_text()))
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    start = args.end - dt.timedelta(days=365 * args.years - 1)
    mid = start + dt.timedelta(days=(args.end - start).days // 2)
    one = dt.timedelta(days=1)
    title = (
        f"bench_scale: {args.customers:,} customers x {args.years} y ({start} .. {args.end}), "
        f"{args.format}, {os.cpu_count()} CPUs, workdir {args.workdir}"
    )
    print(title, flush=True)
    env = private_env(args.workdir / "state_simulator", args.workdir, start)
    if not args.no_parse:  # Dagster reads dbt's manifest: make sure it matches the project
        parse = [str(Path(sys.executable).with_name("dbt")), "parse", "--quiet"]
        # for the warehouse path of the run that follows, as `make setup` does: a parse for
        # another profile costs a full parse in the first dbt step (a re-run has no backfill
        # before it to save one)
        state = "state_full" if args.rerun_nightly else "state_simulator"
        measured(
            parse + ["--project-dir", "dbt_project", "--profiles-dir", "dbt_project"],
            private_env(args.workdir / state, args.workdir, start),
            args.workdir / "logs" / "dbt_parse.log",
        )
    landing, sim = simulate(args, start, env)
    if args.simulate_only:
        return print(f"landing zone: {landing} ({sim['landing_bytes'] / GIB:.2f} GiB)")
    out = args.workdir / f"result_{args.customers}x{args.years}y.json"
    if args.rerun_nightly:  # the same night again: ingest replaces it, the rest is incremental
        result = json.loads(out.read_text())
        rerun = [("nightly_rerun", args.end, args.end)]
        result["runs"] |= pipeline_state(args, "full", landing, start, rerun, fresh=False)
        wall = result["runs"]["nightly_rerun_full"]["wall_s"]
        result["targets"].append(
            ("nightly run again, full history (process wall)", wall, TARGETS["nightly_s"], "s")
        )
        out.write_text(json.dumps(result, indent=1, default=str))
        return report(result)
    full = [("backfill", start, args.end - one), ("nightly", args.end, args.end)]
    runs = {}
    if not args.backfill_only:
        half = [("backfill", start, mid - one), ("nightly", mid, mid)]
        runs |= pipeline_state(args, "half", landing, start, half)
    runs |= pipeline_state(args, "full", landing, start, full[:1] if args.backfill_only else full)
    targets = [("full backfill, all days but the last (process wall)", "backfill_full", "wall_s")]
    if not args.backfill_only:
        targets.insert(0, ("nightly run, full history (process wall)", "nightly_full", "wall_s"))
    peak = max(r["peak_tree_rss_bytes"] for r in runs.values()) / GIB
    result = {
        "title": title,
        "args": {k: str(v) for k, v in vars(args).items()},
        "simulator": sim,
        "runs": runs,
        "targets": [
            (label, runs[run][key], TARGETS["nightly_s" if "nightly" in run else "backfill_s"], "s")
            for label, run, key in targets
        ]
        + [("peak RSS of any pipeline run (process tree)", peak, TARGETS["peak_rss_gib"], "GiB")],
    }
    out.write_text(json.dumps(result, indent=1, default=str))
    report(result)
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
