"""Ingest: one daily-partitioned asset per landing source -> ``raw.<source>``."""

import dagster as dg

from orchestration.contract import SOURCES, Source
from orchestration.defs.retries import TRANSIENT_RETRY, non_transient
from orchestration.defs.shared import (
    DAILY,
    SETTINGS,
    SINGLE_RUN,
    WAREHOUSE_POOL,
    WarehouseResource,
    partition_dates,
)
from orchestration.ingest import load_partitions


def build_ingest_asset(source: Source) -> dg.AssetsDefinition:
    """The asset loading ``<landing>/<source>/<day>.*`` into ``raw.<source>`` per day."""

    @dg.asset(
        key=["raw", source.name],
        group_name="ingest",
        partitions_def=DAILY,
        backfill_policy=SINGLE_RUN,
        pool=WAREHOUSE_POOL,
        retry_policy=TRANSIENT_RETRY,
        kinds={"duckdb"},
        description=(
            f"Every landed `{source.name}` row, typed, with partition date, source file and "
            f"load time. Invalid rows go to `raw.{source.name}_rejected` with the rule broken."
        ),
        metadata={"dagster/table_name": f"raw.{source.name}"},
    )
    def _ingest(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        days = partition_dates(context)
        with non_transient(), warehouse.connect() as con:
            results, refused = load_partitions(con, source.name, days, SETTINGS.landing_dir)
        totals = {"read": 0, "loaded": 0, "rejected": 0, "files": 0}
        rejected_by_rule: dict[str, int] = {}
        for result in results:
            totals["files"] += result.file is not None
            totals["read"] += result.read_rows
            totals["loaded"] += result.loaded_rows
            totals["rejected"] += result.rejected_rows
            for rule, n in result.rejected_by_rule.items():
                rejected_by_rule[rule] = rejected_by_rule.get(rule, 0) + n
            if result.rejected_rows:
                context.log.warning(
                    f"{result.file}: {result.rejected_rows} row(s) rejected "
                    f"{result.rejected_by_rule} -> raw.{source.name}_rejected"
                )
        for message in refused:
            context.log.error(message)
        metadata = {
            "partition_range": f"{days[0]}..{days[-1]}",
            "files": totals["files"],
            "rows_read": totals["read"],
            "rows_loaded": totals["loaded"],
            "rows_rejected": totals["rejected"],
            "rejected_by_rule": rejected_by_rule,
            "dagster/row_count": totals["loaded"],
        }
        if refused:
            context.add_output_metadata(metadata)
            raise dg.Failure(
                description=f"{len(refused)} file(s) refused:\n" + "\n".join(refused),
                metadata=metadata,
                allow_retries=False,
            )
        return dg.MaterializeResult(metadata=metadata)

    return _ingest


defs = dg.Definitions(assets=[build_ingest_asset(s) for s in SOURCES.values()])
