"""The dbt resource's shortcuts: its version agrees with ``dbt --version``; it builds no
in-process adapter, which only the metadata fetches this project never calls would use."""

import os
import re
import subprocess
import sys
from pathlib import Path

from orchestration.defs.dbt import DBT_PROJECT, LifecycleDbtCli

DBT = Path(sys.executable).parent / "dbt"


def reported_version() -> str:
    out = subprocess.run([DBT, "--version"], capture_output=True, text=True, check=True).stdout
    return re.search(r"(\d+\.\d+\.\d+)", out).group(1)


def test_own_dbt_version_without_a_subprocess_matches_dbt_version():
    resource = LifecycleDbtCli(project_dir=DBT_PROJECT, dbt_executable=str(DBT))
    assert str(resource._cli_version) == reported_version()
    assert resource._cli_version.major < 2  # dbt Core, not Fusion: dagster-dbt's branch


def test_another_dbt_executable_is_asked_for_its_version(tmp_path):
    wrapper = tmp_path / "dbt"  # outside this environment: its version cannot be assumed
    wrapper.write_text('#!/bin/sh\necho "Core:"\necho "  - installed: 9.8.7"\n')
    wrapper.chmod(0o755)
    resource = LifecycleDbtCli(project_dir=DBT_PROJECT, dbt_executable=os.fspath(wrapper))
    assert str(resource._cli_version) == "9.8.7"


def test_no_in_process_adapter_and_no_metadata_fetch_needing_one():
    resource = LifecycleDbtCli(project_dir=DBT_PROJECT, dbt_executable=str(DBT))
    assert resource._initialize_dbt_core_adapter(["build"]) is None
    defs = Path(__file__).resolve().parents[1] / "orchestration"
    sources = "\n".join(p.read_text() for p in defs.rglob("*.py"))
    assert not re.search(r"\.fetch_(row_counts|column_metadata)\(", sources)
