"""The instance storage of deploy/dagster.yaml (orchestration/instance_storage.py): Dagster's
SQLite files, written through kept-open connections, readable by Dagster's own storage, safe
across processes, forks and wipes."""

import logging
import multiprocessing
import shutil
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage

from orchestration.instance_storage import (
    MAX_OPEN_SHARDS,
    PooledSqliteEventLogStorage,
    PooledSqliteStorage,
)

DEPLOY_YAML = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"


def log_event(run_id: str, message: str) -> EventLogEntry:
    return EventLogEntry(
        error_info=None,
        level=logging.INFO,
        user_message=message,
        run_id=run_id,
        timestamp=time.time(),
        step_key=None,
        job_name=None,
        dagster_event=None,
    )


class ConnectCounter:
    """Counts SQLite connections opened by any SQLAlchemy engine while active."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, *_) -> None:
        self.n += 1

    def __enter__(self):
        sqlalchemy.event.listen(sqlalchemy.pool.Pool, "connect", self)
        return self

    def __exit__(self, *_) -> None:
        sqlalchemy.event.remove(sqlalchemy.pool.Pool, "connect", self)


@dg.asset
def tiny() -> int:
    return 1


def test_deploy_instance_keeps_connections_and_dagster_reads_its_files(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        result = dg.materialize([tiny], instance=instance)
        assert result.success
        run_id = result.run_id
        with ConnectCounter() as pooled:
            for i in range(50):
                storage.store_event(log_event(run_id, f"pooled {i}"))
    # Dagster's own SQLite storage on the same directory sees every event and the asset
    plain = DagsterSqliteStorage.from_local(str(home)).event_log_storage
    messages = [e.user_message for e in plain.get_logs_for_run(run_id)]
    assert [m for m in messages if m.startswith("pooled")] == [f"pooled {i}" for i in range(50)]
    assert plain.get_latest_materialization_events([dg.AssetKey("tiny")])[dg.AssetKey("tiny")]
    with ConnectCounter() as unpooled:
        for i in range(50):
            plain.store_event(log_event(run_id, f"plain {i}"))
    assert pooled.n <= 2  # the connections of the run were already open
    assert unpooled.n >= 50  # Dagster's: one (or more) per event


def _write_events(base_dir: str, run_id: str, tag: str, n: int) -> None:
    storage = PooledSqliteStorage.from_local(base_dir).event_log_storage
    for i in range(n):
        storage.store_event(log_event(run_id, f"{tag} {i}"))


def test_processes_write_one_run_log_at_the_same_time(tmp_path):
    run_id = str(uuid.uuid4())
    PooledSqliteStorage.from_local(str(tmp_path))  # creates the index once
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_write_events, args=(str(tmp_path), run_id, tag, 150))
        for tag in ("a", "b")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    storage = DagsterSqliteStorage.from_local(str(tmp_path)).event_log_storage
    messages = {e.user_message for e in storage.get_logs_for_run(run_id)}
    assert messages == {f"{t} {i}" for t in ("a", "b") for i in range(150)}


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_a_forked_child_opens_its_own_connections(tmp_path):
    storage = PooledSqliteStorage.from_local(str(tmp_path)).event_log_storage
    run_id = str(uuid.uuid4())
    storage.store_event(log_event(run_id, "parent before"))
    child = multiprocessing.get_context("fork").Process(
        target=lambda: [storage.store_event(log_event(run_id, f"child {i}")) for i in range(20)]
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    storage.store_event(log_event(run_id, "parent after"))  # the parent's connection still works
    messages = [e.user_message for e in storage.get_logs_for_run(run_id)]
    assert messages[0] == "parent before" and messages[-1] == "parent after"
    assert sorted(m for m in messages if m.startswith("child")) == sorted(
        f"child {i}" for i in range(20)
    )


def test_open_databases_are_bounded_and_wipe_closes_them(tmp_path):
    storage = PooledSqliteStorage.from_local(str(tmp_path)).event_log_storage
    run_ids = [str(uuid.uuid4()) for _ in range(MAX_OPEN_SHARDS + 4)]
    for run_id in run_ids:
        storage.store_event(log_event(run_id, "hello"))
    assert len(storage._engines) == MAX_OPEN_SHARDS
    # an evicted run's database reopens on demand
    assert [e.user_message for e in storage.get_logs_for_run(run_ids[0])] == ["hello"]
    storage.wipe()
    assert list(storage._engines) == ["index"]  # emptied by the wipe: the run logs were closed
    assert not list(Path(tmp_path, "history", "runs").glob(f"{run_ids[-1]}.db"))
    assert storage.get_logs_for_run(run_ids[-1]) == []
    storage.store_event(log_event(run_ids[-1], "after wipe"))
    assert [e.user_message for e in storage.get_logs_for_run(run_ids[-1])] == ["after wipe"]
