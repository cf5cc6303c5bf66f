"""dbt models as Dagster assets: one factory, one call per dbt selection.

``warehouse`` is every model that does not depend on the ML scores; ``segments`` is
everything downstream of the ``ml`` sources (``source:ml+``), so a model reading scores
can never end up upstream of the models that feed the ML assets. dbt tests become
asset checks; ``dbt build`` runs them right after each model, so an error-severity
failure stops everything downstream in dbt.
"""

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.defs.retries import TRANSIENT_RETRY, non_transient
from orchestration.defs.shared import WAREHOUSE_POOL, run_day_range
from orchestration.settings import DBT_PROJECT_DIR

DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
DBT_PROJECT.prepare_if_dev()


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


def dbt_vars(context: dg.AssetExecutionContext) -> dict[str, str]:
    """dbt vars: the days this run loaded (``min_date``/``max_date``), when it loaded any.

    The as-of date is not passed: the models are built as of the newest loaded day (the
    ``lifecycle_as_of_date`` macro), so backfilling old days never rolls marts back."""
    days = run_day_range(context)
    return {"min_date": days[0].isoformat(), "max_date": days[1].isoformat()} if days else {}


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
        dbt_args = ["build"]
        if variables := dbt_vars(context):
            dbt_args += ["--vars", json.dumps(variables)]
        with non_transient():  # a failing dbt test is never retried; a lock is
            yield from dbt.cli(dbt_args, context=context).stream()

    return _dbt


POST_ML = "source:ml+"
warehouse_models = build_dbt_assets("dbt_warehouse", select="fqn:*", exclude=POST_ML)
segment_models = build_dbt_assets("dbt_segments", select=POST_ML)

defs = dg.Definitions(assets=[warehouse_models, segment_models])
