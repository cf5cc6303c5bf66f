"""Dagster instance storage on PostgreSQL: the real ``deploy/dagster-postgres.yaml`` as
``$DAGSTER_HOME/dagster.yaml``, a real PostgreSQL 15 server (``pg_server``), a real run of the
project's ingest assets over two simulated days, and the run, its events and the asset
materializations found both in PostgreSQL's tables and through a fresh instance."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import psycopg2
import pytest
import yaml

from simulator.config import SimulatorConfig
from simulator.writer import run as simulate

ROOT = Path(__file__).resolve().parent.parent
INSTANCE_YAML = ROOT / "deploy" / "dagster-postgres.yaml"
LANDING = Path(os.environ["LIFECYCLE_LANDING_DIR"])
# Outside every range other tests load (test_pipeline: 2024, test_ingest_asset: 2025-02).
DAYS = (dt.date(2025, 4, 1), dt.date(2025, 4, 2))
ROLE, PASSWORD, DBNAME = "dagster_app", "not-a-secret", "dagster_instance"


def _instance_env(monkeypatch, home: Path, port: int) -> None:
    """DAGSTER_HOME holds a symlink to the real file: what is tested is what is shipped."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").symlink_to(INSTANCE_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for var, value in {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(port),
        "DAGSTER_PG_USER": ROLE,
        "DAGSTER_PG_PASSWORD": PASSWORD,
        "DAGSTER_PG_DB": DBNAME,
    }.items():
        monkeypatch.setenv(var, value)


def _land(tmp_path: Path) -> list[Path]:
    """Simulate the two days and copy their files into the session's landing zone."""
    out = tmp_path / "sim" / "landing"
    simulate(SimulatorConfig(customers=150, start=DAYS[0], end=DAYS[1], seed=5), out)
    copied = []
    for f in sorted(out.glob("*/*.csv")):
        target = LANDING / f.parent.name / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, target)
        copied.append(target)
    return copied


@pytest.fixture()
def pg_database(pg_server):
    """A database owned by a dedicated login role (the role Dagster connects as)."""
    con = psycopg2.connect(pg_server.dsn())
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f"drop database if exists {DBNAME}")
        cur.execute(f"drop role if exists {ROLE}")
        cur.execute(f"create role {ROLE} login password %s", (PASSWORD,))
        cur.execute(f"create database {DBNAME} owner {ROLE}")
    con.close()
    return pg_server


def test_missing_connection_variable_is_named(monkeypatch, tmp_path):
    _instance_env(monkeypatch, tmp_path / "home", 5432)
    monkeypatch.delenv("DAGSTER_PG_HOST")
    with pytest.raises(Exception, match="DAGSTER_PG_HOST"):
        dg.DagsterInstance.get()


def test_ingest_run_is_stored_in_postgres(pg_database, monkeypatch, tmp_path):
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    from orchestration.contract import SOURCES
    from orchestration.defs.ingest import build_ingest_asset
    from orchestration.defs.shared import WAREHOUSE_POOL, WarehouseResource

    _instance_env(monkeypatch, tmp_path / "home", pg_database.port)
    shipped = yaml.safe_load(INSTANCE_YAML.read_text())
    warehouse = tmp_path / "warehouse.duckdb"
    landed = _land(tmp_path)
    try:
        with dg.DagsterInstance.get() as instance:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
            assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
            assert type(instance.run_coordinator).__name__ == shipped["run_coordinator"]["class"]
            pools = instance.get_concurrency_config().pool_config
            assert pools.default_pool_limit == shipped["concurrency"]["pools"]["default_limit"]
            result = dg.materialize(
                [build_ingest_asset(s) for s in SOURCES.values()],
                instance=instance,
                resources={"warehouse": WarehouseResource(path=str(warehouse))},
                tags={
                    "dagster/asset_partition_range_start": DAYS[0].isoformat(),
                    "dagster/asset_partition_range_end": DAYS[1].isoformat(),
                },
            )
            assert result.success
            run_id = result.run_id
    finally:
        for f in landed:
            f.unlink(missing_ok=True)

    # 1. In PostgreSQL's own tables, owned by the role named in DAGSTER_PG_USER.
    keys = {json.dumps(["raw", name]) for name in SOURCES}
    con = psycopg2.connect(pg_database.dsn(DBNAME))
    try:
        with con.cursor() as cur:
            cur.execute("select tableowner from pg_tables where tablename = 'runs'")
            assert cur.fetchall() == [(ROLE,)]
            cur.execute("select run_id, status from runs")
            assert cur.fetchall() == [(run_id, "SUCCESS")]
            cur.execute(
                "select asset_key, partition, count(*) from event_logs where run_id = %s"
                " and dagster_event_type = 'ASSET_MATERIALIZATION' group by 1, 2",
                (run_id,),
            )
            materialized = cur.fetchall()
            cur.execute("select count(*) from event_logs where run_id = %s", (run_id,))
            n_events = cur.fetchone()[0]
            cur.execute("select asset_key from asset_keys")
            asset_keys = {row[0] for row in cur.fetchall()}
            cur.execute("select concurrency_key from concurrency_limits")
            pool_rows = {row[0] for row in cur.fetchall()}
    finally:
        con.close()
    days = {d.isoformat() for d in DAYS}
    assert {(k, p) for k, p, _ in materialized} == {(k, d) for k in keys for d in days}
    assert all(n == 1 for _, _, n in materialized)
    assert n_events > len(materialized)  # run and step events too
    assert keys <= asset_keys
    assert WAREHOUSE_POOL in pool_rows  # the pool's slots live in PostgreSQL too

    # 2. Read back through a fresh instance built from the same file and environment.
    with (
        dg.DagsterInstance.get() as instance,
        duckdb.connect(str(warehouse), read_only=True) as wh,
    ):
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        for name in SOURCES:
            key = dg.AssetKey(["raw", name])
            assert instance.get_materialized_partitions(key) == days
            event = instance.get_latest_materialization_event(key)
            assert event is not None and event.run_id == run_id
            # a single-run backfill attaches the range's totals to each day's event
            loaded = wh.execute(f"select count(*) from raw.{name}").fetchone()[0]
            assert event.asset_materialization.metadata["rows_loaded"].value == loaded
        orders = instance.get_latest_materialization_event(dg.AssetKey(["raw", "orders"]))
        assert orders.asset_materialization.metadata["rows_loaded"].value > 0
