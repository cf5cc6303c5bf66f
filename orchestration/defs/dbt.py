"""dbt models as Dagster assets: one factory, one call per dbt selection.

``warehouse`` is every model that does not depend on the ML scores; ``segments`` is
everything downstream of the ``ml`` sources (``source:ml+``), so a model reading scores
can never end up upstream of the models that feed the ML assets. dbt tests become
asset checks; ``dbt build`` runs them right after each model, so an error-severity
failure stops everything downstream in dbt.
"""

import importlib.metadata
import os
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from packaging import version

from orchestration.defs.retries import TRANSIENT_RETRY, non_transient
from orchestration.defs.shared import WAREHOUSE_POOL, run_day_range
from orchestration.settings import DBT_PROJECT_DIR

DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
DBT_PROJECT.prepare_if_dev()
DAY_RANGE_ENV = ("LIFECYCLE_MIN_DATE", "LIFECYCLE_MAX_DATE")
PARTIAL_PARSE = "partial_parse.msgpack"


class LifecycleTranslator(DagsterDbtTranslator):
    """Models are keyed ``<schema>/<model>`` (e.g. ``marts/dim_customers``) and grouped by
    schema; sources keep dagster-dbt's ``<source>/<table>`` (``raw/orders``, ``ml/...``)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] in ("model", "seed", "snapshot"):
            return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "model":
            return dbt_resource_props["schema"]
        return super().get_group_name(dbt_resource_props)


class LifecycleDbtCli(DbtCliResource):
    """dagster-dbt's resource, without its ``dbt --version`` subprocess and in-process adapter.

    Before a run's first dbt command, dagster-dbt runs ``dbt --version`` to tell dbt Core
    from dbt Fusion: a whole dbt start-up (2-3 s) per run. When ``dbt_executable`` is this
    environment's own ``dbt``, its version is dbt-core's package metadata.

    Before every dbt command, it also builds a dbt adapter in the Dagster process, loading
    every dbt macro (0.5-1.5 s a step). The adapter only serves ``fetch_row_counts()`` and
    ``fetch_column_metadata()``, which this project does not call (row counts come from the
    asset checks, column schemas from the manifest); without it they would add no metadata,
    so ``test_dbt_resource.py`` asserts that neither is called."""

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None

    @cached_property
    def _cli_version(self) -> version.Version:
        executable = shutil.which(self.dbt_executable)
        own = Path(sys.executable).parent
        if executable is None or Path(executable).parent != own:
            return super()._cli_version
        return version.parse(importlib.metadata.version("dbt-core"))


def dbt_env(context: dg.AssetExecutionContext) -> dict[str, str]:
    """The days this run loaded, as the environment variables ``LIFECYCLE_MIN_DATE`` /
    ``LIFECYCLE_MAX_DATE`` read by the dbt macros (empty when the run loaded none).

    Environment variables, not ``--vars``: dbt re-parses the whole project whenever ``--vars``
    differ from its saved parse (``target/partial_parse.msgpack``, which dagster-dbt copies
    into each invocation), but only the files that read an environment variable when that
    variable changes. The as-of date is not passed: the models are built as of the newest
    loaded day (the ``lifecycle_as_of_date`` macro), so backfilling old days never rolls
    marts back."""
    days = run_day_range(context)
    if not days:
        return {}
    return {"LIFECYCLE_MIN_DATE": days[0].isoformat(), "LIFECYCLE_MAX_DATE": days[1].isoformat()}


NIGHTLY_ENV = {
    # unit tests check the SQL on fixed rows, not the night's data: CI runs them
    # (tests/test_dbt_project.py), the nightly does not spend warehouse time on them
    "DBT_EXCLUDE_RESOURCE_TYPES": "unit_test",
}


@contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set ``variables`` in ``os.environ`` (the dbt subprocess inherits it) and unset any
    ``LIFECYCLE_MIN_DATE`` / ``LIFECYCLE_MAX_DATE`` not given, restoring everything after."""
    names = {*variables, *DAY_RANGE_ENV}
    saved = {name: os.environ.get(name) for name in names}
    try:
        for name in names:
            os.environ.pop(name, None)
        os.environ.update(variables)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def keep_parse(target_path: Path) -> None:
    """Make this invocation's parse the one the next dbt invocation starts from.

    dagster-dbt copies ``<project>/target/partial_parse.msgpack`` into each invocation's own
    target path; dbt only reuses it when the profile (warehouse path, memory limit, target)
    matches. A parse prepared elsewhere (image build, another warehouse) would cost a full
    parse on every step; once a step has run, the next ones only re-parse what changed."""
    saved = target_path / PARTIAL_PARSE
    if not saved.is_file():
        return
    project_parse = Path(DBT_PROJECT.project_dir) / DBT_PROJECT.target_path / PARTIAL_PARSE
    staged = project_parse.with_name(f"{PARTIAL_PARSE}.{os.getpid()}")
    try:
        shutil.copyfile(saved, staged)
        os.replace(staged, project_parse)  # atomic: a concurrent reader sees old or new
    except OSError:  # read-only project: keep the prepared parse
        staged.unlink(missing_ok=True)


def build_dbt_assets(name: str, select: str, exclude: str = "") -> dg.AssetsDefinition:
    """dbt assets for one selection, built with ``dbt build``. They are not partitioned:
    each build is the warehouse as of the newest loaded day (one event per model, however
    many days a backfill loads)."""

    @dbt_assets(
        name=name,
        manifest=DBT_PROJECT.manifest_path,
        project=DBT_PROJECT,
        select=select,
        exclude=exclude,
        dagster_dbt_translator=LifecycleTranslator(),
        pool=WAREHOUSE_POOL,
        retry_policy=TRANSIENT_RETRY,
    )
    def _dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        with non_transient():  # a failing dbt test is never retried; a lock is
            with environment({**NIGHTLY_ENV, **dbt_env(context)}):  # dbt.cli starts dbt here
                invocation = dbt.cli(["build"], context=context)
            yield from invocation.stream()
        keep_parse(invocation.target_path)

    return _dbt


POST_ML = "source:ml+"
warehouse_models = build_dbt_assets("dbt_warehouse", select="fqn:*", exclude=POST_ML)
segment_models = build_dbt_assets("dbt_segments", select=POST_ML)

defs = dg.Definitions(assets=[warehouse_models, segment_models])
