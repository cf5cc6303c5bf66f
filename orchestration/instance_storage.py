"""Dagster's SQLite instance storage, with the event log's database connections kept open.

Written by hand because no setting does it: Dagster's ``SqliteEventLogStorage`` builds a new
SQLAlchemy engine, and opens a new SQLite connection, for every statement group it runs
(``NullPool``): about five per event, ~10 ms an event on this machine. A nightly run writes
~650 events at any scale (each dbt test alone is three: planned, output, evaluation), so
6.5 s of every nightly went to opening files and recompiling the same INSERTs. Dagster's
answer for production is PostgreSQL storage (``deploy/dagster-postgres.yaml``), which pools.

``PooledSqliteStorage`` is Dagster's SQLite storage file for file: the same databases under
``$DAGSTER_HOME/history`` and ``schedules``, the same schema, WAL journal and locking, so the
webserver, the daemon, runs and Dagster's own SQLite storage read and write them together.
The only difference: each process keeps an engine (one open connection) for each of the
``MAX_OPEN_SHARDS`` database files it used last (the index and the recent runs' event logs),
and never carries one across a fork.
"""

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from sqlalchemy.engine import Connection, Engine

MAX_OPEN_SHARDS = 8


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` keeping one engine per recently used database file."""

    def __init__(self, base_dir: str, inst_data=None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._pid = os.getpid()
        super().__init__(base_dir, inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # Dagster's contract, kept: one connection in use at a time per storage (the lock),
        # a transaction per block, the database created and migrated on first use.
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine(self, shard: str) -> Engine:
        if self._pid != os.getpid():  # a forked child: never use the parent's connections
            for engine in self._engines.values():
                engine.dispose(close=False)
            self._engines.clear()
            self._pid = os.getpid()
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
        self._engines[shard] = engine  # most recently used last
        while len(self._engines) > MAX_OPEN_SHARDS:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    def close_connections(self) -> None:
        """Close every kept connection (they reopen on the next use)."""
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self.close_connections()  # the run databases are deleted: no handle may outlive them
        super().wipe()

    def dispose(self) -> None:
        self.close_connections()
        super().dispose()


class PooledSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, event logs, schedules) with the pooled event log.

    Configured in ``dagster.yaml`` as ``storage: custom:`` with ``base_dir`` (the instance
    directory, normally ``{env: DAGSTER_HOME}``).
    """

    def __init__(self, base_dir: str, inst_data=None) -> None:
        # Dagster's constructor builds (and, for a new instance, creates) all three storages;
        # the event log it built holds no connection and is replaced by the pooled one
        super().__init__(base_dir, inst_data)
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "PooledSqliteStorage":
        return cls.from_local(inst_data=inst_data, **config_value)
