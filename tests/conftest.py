"""Session-wide settings: every test that loads the Dagster definitions sees a private
landing zone, warehouse and model folder under a temporary directory (the settings are
read when the definitions are imported, so they are set before any test module runs)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SESSION_DIR = Path(tempfile.mkdtemp(prefix="lifecycle-tests-"))
PIPELINE_START = "2024-01-01"
PIPELINE_END = "2024-10-31"

os.environ["LIFECYCLE_LANDING_DIR"] = str(SESSION_DIR / "landing")
os.environ["LIFECYCLE_WAREHOUSE"] = str(SESSION_DIR / "warehouse" / "lifecycle.duckdb")
os.environ["LIFECYCLE_MODEL_DIR"] = str(SESSION_DIR / "models")
os.environ["LIFECYCLE_START_DATE"] = PIPELINE_START
os.environ["LIFECYCLE_REPORT_DIR"] = str(SESSION_DIR / "reports")
os.environ["LIFECYCLE_EXPORT_DIR"] = str(SESSION_DIR / "exports")
os.environ["LIFECYCLE_PUBLISHED_DIR"] = str(SESSION_DIR / "published")
os.environ.pop("DAGSTER_HOME", None)
os.environ["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] = "true"


sys.path.insert(0, str(Path(__file__).parent))
from dagster_server import dagster_stack  # noqa: E402, F401  (session fixture)
from pg_server import PgServer, PgUnavailable, ensure_binaries  # noqa: E402


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL 15 server on a free 127.0.0.1 port, shared by every test module that needs
    one, stopped (by PID) after the session."""
    try:
        ensure_binaries()
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    server = PgServer().start()
    try:
        yield server
    finally:
        server.stop()
