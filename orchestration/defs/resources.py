"""Resources shared by every asset of the code location."""

import dagster as dg

from orchestration.defs.dbt import DBT_PROJECT, LifecycleDbtCli
from orchestration.defs.shared import SETTINGS, WarehouseResource

# One process per run: DuckDB takes one writer at a time, so parallel step processes
# would only queue on the pool while paying their start-up cost.
defs = dg.Definitions(
    executor=dg.in_process_executor,
    resources={
        "warehouse": WarehouseResource(path=str(SETTINGS.warehouse)),
        "dbt": LifecycleDbtCli(project_dir=DBT_PROJECT),
    },
)
