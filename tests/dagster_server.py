"""A real Dagster webserver + daemon over a private landing zone, for end-to-end tests.

:class:`DagsterStack` creates a temporary ``DAGSTER_HOME`` (with a copy of
``deploy/dagster.yaml``: QueuedRunCoordinator, pool ``duckdb_warehouse`` limited to 1), a
simulated landing zone and its own warehouse/model/report/export/published folders, loads the
oldest landing days into the warehouse directly (history for the models, no Dagster run, so
no sensor reacts to it), then starts ``dagster-webserver`` and ``dagster-daemon run`` from
the venv on the code location ``dg dev`` serves (module ``orchestration.definitions``,
working directory = project root). It waits for ``/server_info``, the loaded code location
and healthy daemons, and on exit stops only the two process groups it started (by PID:
SIGTERM, then SIGKILL). Server logs are in ``<tmp>/logs`` and printed when start-up fails.

Day layout (``stack.days`` = landing days, oldest first; each test uses its own days):
``days[:-10]`` preloaded history, ``days[-10:-5]`` for ``test_overlapping_runs``,
``days[-5]`` never loaded, ``days[-4:-1]`` for ``test_ui_backfill``, ``days[-1]`` never loaded.

The session fixture ``dagster_stack`` is registered in conftest.py.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import free_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CUSTOMERS, DAYS, HISTORY_DAYS, SEED = 600, 180, 170, 11
REQUIRED_DAEMONS = {"SENSOR", "BACKFILL", "QUEUED_RUN_COORDINATOR"}
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

LOCATION_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
DAEMON_QUERY = """{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"""
RUN_QUERY = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run {
  runId status jobName tags { key value } } } }"""
RUNS_QUERY = """query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results {
  runId status jobName tags { key value } } } } }"""


class DagsterStack:
    """Webserver + daemon on a private instance; see the module docstring."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="lifecycle-dagster-"))
        self.home = self.root / "dagster_home"
        self.landing = self.root / "landing"
        self.warehouse = self.root / "warehouse" / "lifecycle.duckdb"
        self.logs = self.root / "logs"
        self.last_day = dt.date.today() - dt.timedelta(days=3)
        self.first_day = self.last_day - dt.timedelta(days=DAYS - 1)
        self.days = [self.first_day + dt.timedelta(days=i) for i in range(DAYS)]
        self.history = self.days[:HISTORY_DAYS]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}

    # -- set-up -----------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The servers' environment: this stack's folders, nothing inherited from LIFECYCLE_*."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECYCLE_")}
        # No schedule tick during a test session: both run 12 hours from now.
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=12)).strftime("%H:%M")
        env.update(
            DAGSTER_HOME=str(self.home),
            DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS="true",
            LIFECYCLE_LANDING_DIR=str(self.landing),
            LIFECYCLE_WAREHOUSE=str(self.warehouse),
            LIFECYCLE_MODEL_DIR=str(self.root / "models"),
            LIFECYCLE_REPORT_DIR=str(self.root / "reports"),
            LIFECYCLE_EXPORT_DIR=str(self.root / "exports"),
            LIFECYCLE_PUBLISHED_DIR=str(self.root / "published"),
            LIFECYCLE_START_DATE=self.first_day.isoformat(),
            LIFECYCLE_TIMEZONE="UTC",
            LIFECYCLE_LANDING_SENSOR="stopped",
            LIFECYCLE_SCHEDULE_TIME=later,
            LIFECYCLE_FRESHNESS_TIME=later,
        )
        return env

    def prepare(self) -> None:
        """DAGSTER_HOME, landing zone, workspace file and the preloaded history."""
        self.home.mkdir(parents=True)
        self.logs.mkdir()
        shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", self.home / "dagster.yaml")
        simulate = [sys.executable, "-m", "simulator", "--customers", str(CUSTOMERS)]
        simulate += ["--start", self.first_day.isoformat(), "--end", self.last_day.isoformat()]
        simulate += ["--seed", str(SEED), "--out", str(self.landing), "--clean"]
        subprocess.run(simulate, cwd=PROJECT_ROOT, check=True, capture_output=True, timeout=120)
        entry = {
            "module_name": "orchestration.definitions",
            "working_directory": str(PROJECT_ROOT),
            "location_name": PROJECT_ROOT.name,  # what `dg dev` calls it
        }
        (self.root / "workspace.yaml").write_text(
            json.dumps({"load_from": [{"python_module": entry}]})
        )
        self.preload(self.history)
        # Create the SQLite storages once: two processes creating them together can stamp
        # the schema version twice ("alembic_version has more than one head").
        with self.instance() as instance:
            instance.get_runs(limit=1)
            instance.get_asset_keys()
            instance.all_instigator_state()

    def preload(self, days: list[dt.date]) -> None:
        """Load ``days`` of every source straight into the warehouse (product code, no run)."""
        from orchestration.contract import SOURCES
        from orchestration.ingest import load_partitions
        from orchestration.warehouse import connect

        with connect(self.warehouse) as con:
            for source in SOURCES:
                _, refused = load_partitions(con, source, days, self.landing)
                assert not refused, refused

    def start(self, timeout_s: float = 240.0) -> DagsterStack:
        self.prepare()
        workspace = ["-w", str(self.root / "workspace.yaml")]
        commands = {
            "webserver": [str(VENV_BIN / "dagster-webserver"), "-h", "127.0.0.1"]
            + ["-p", str(self.port), *workspace],
            "daemon": [str(VENV_BIN / "dagster-daemon"), "run", *workspace],
        }
        env = self.env()
        for name, command in commands.items():
            log = (self.logs / f"{name}.log").open("wb")
            self.procs[name] = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stopped with its children
            )
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.print_logs()
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float) -> None:
        """Until the webserver answers, the code location is loaded and the daemons beat."""
        deadline = time.monotonic() + timeout_s
        state = "webserver not answering"
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"dagster {name} exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=5):
                    pass
                entries = self.graphql(LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
                loaded = bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)
                errors = [e["locationOrLoadError"] for e in entries if e["loadStatus"] == "LOADED"]
                if any(err and err["__typename"] == "PythonError" for err in errors):
                    raise RuntimeError(f"code location failed to load: {errors}")
                state = f"code location: {[e['loadStatus'] for e in entries]}"
                if loaded:
                    health = self.graphql(DAEMON_QUERY)["instance"]["daemonHealth"]
                    healthy = {d["daemonType"] for d in health["allDaemonStatuses"] if d["healthy"]}
                    state = f"healthy daemons: {sorted(healthy)}"
                    if healthy >= REQUIRED_DAEMONS:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1.0)
        raise TimeoutError(f"Dagster not ready after {timeout_s:.0f} s ({state})")

    # -- tear-down --------------------------------------------------------------------
    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM the process groups this stack started, SIGKILL what is left."""
        for proc in self.procs.values():
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(proc, signal.SIGKILL)  # leftover children (code server, run)
            proc.wait(timeout=10)

    def print_logs(self, tail_chars: int = 6000) -> None:
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace")
            print(f"----- {path} (last {tail_chars} chars) -----\n{text[-tail_chars:]}")

    # -- API --------------------------------------------------------------------------
    def graphql(self, query: str, variables: dict | None = None, timeout_s: float = 30) -> dict:
        """POST a GraphQL query; its ``data`` (raises on GraphQL errors)."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise RuntimeError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def run(self, run_id: str) -> dict:
        """``{runId, status, jobName, tags: {k: v}}`` of one run."""
        run = self.graphql(RUN_QUERY, {"id": run_id})["runOrError"]
        return {**run, "tags": {t["key"]: t["value"] for t in run["tags"]}}

    def runs(self, tags: dict[str, str] | None = None) -> list[dict]:
        """Every run (optionally with all of ``tags``), newest first."""
        flt = {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}
        found = self.graphql(RUNS_QUERY, {"f": flt})["runsOrError"]["results"]
        return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in found]

    def wait_runs(self, run_ids: list[str], timeout_s: float = 240.0) -> list[dict]:
        """Wait until every run has finished; their final states."""
        deadline = time.monotonic() + timeout_s
        while True:
            runs = [self.run(r) for r in run_ids]
            if all(r["status"] in FINISHED for r in runs):
                return runs
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs not finished after {timeout_s:.0f} s: {runs}")
            time.sleep(2.0)

    def wait_for_run(self, tags: dict[str, str], timeout_s: float = 120.0) -> dict:
        """The first run carrying ``tags`` once it exists (e.g. one started by a sensor)."""
        deadline = time.monotonic() + timeout_s
        while not (found := self.runs(tags)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no run with tags {tags} after {timeout_s:.0f} s")
            time.sleep(2.0)
        return found[-1]

    def landed_rows(self, source: str, day: dt.date) -> int:
        """Data rows of the landing file of ``source`` for ``day`` (0 without a file)."""
        path = self.landing / source / f"{day.isoformat()}.csv"
        if not path.exists():
            return 0
        with path.open(newline="") as f:
            return sum(1 for _ in csv.reader(f)) - 1

    def loaded_rows(self) -> dict[str, dict[dt.date, int]]:
        """Rows per ``_partition_date`` in each raw table, loaded + rejected (read-only)."""
        from orchestration.contract import SOURCES
        from orchestration.warehouse import connect

        counts: dict[str, dict[dt.date, int]] = {}
        with connect(self.warehouse, read_only=True) as con:
            for source in SOURCES:
                rows = con.execute(
                    f"select _partition_date, count(*) from (select _partition_date from "
                    f"raw.{source} union all select _partition_date from raw.{source}_rejected)"
                    " group by 1"
                ).fetchall()
                counts[source] = dict(rows)
        return counts

    def failures(self, run_ids: list[str]) -> str:
        """The step errors (with their causes) of the failed ones among ``run_ids``."""
        import dagster as dg

        lines = []
        with self.instance() as instance:
            for run_id in run_ids:
                for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
                    error = record.dagster_event.step_failure_data.error
                    while error is not None:
                        lines.append(f"{run_id} {record.step_key}: {error.message.strip()[:1500]}")
                        error = error.cause
        return "\n".join(lines)

    def instance(self):
        """A ``DagsterInstance`` on this stack's home, for reading event logs (its storage
        configuration names ``$DAGSTER_HOME``, set here while it loads)."""
        import dagster as dg

        before = os.environ.get("DAGSTER_HOME")
        os.environ["DAGSTER_HOME"] = str(self.home)
        try:
            return dg.DagsterInstance.from_config(str(self.home))
        finally:
            if before is None:
                del os.environ["DAGSTER_HOME"]
            else:
                os.environ["DAGSTER_HOME"] = before


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # the group this Popen created (start_new_session=True)


@pytest.fixture(scope="session")
def dagster_stack() -> Iterator[DagsterStack]:
    """One webserver + daemon for the whole session (registered in conftest.py), stopped by
    PID afterwards."""
    stack = DagsterStack()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(stack.root, ignore_errors=True)
