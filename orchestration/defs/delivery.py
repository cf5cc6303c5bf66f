"""Delivery assets: the nightly CRM exports and the analysts' published read-only copy
(glue around ``orchestration/exports.py`` and ``orchestration/publish.py``).

Both claim the warehouse pool: the export reads the warehouse and the publish copies it,
so no Dagster writer runs meanwhile and the copy is never of a half-finished run. The
folders come from ``LIFECYCLE_EXPORT_DIR`` / ``LIFECYCLE_PUBLISHED_DIR``, read when the
asset runs; the published copy holds the newest ``LIFECYCLE_PUBLISHED_SCORE_DAYS`` as-of
dates of the score history (``SETTINGS.published_score_days``).
"""

from pathlib import Path

import dagster as dg

from orchestration.defs.shared import SETTINGS, WAREHOUSE_POOL, WarehouseResource
from orchestration.exports import export_dir, export_salt, export_segments
from orchestration.publish import publish_snapshot, published_dir, published_keep

SEGMENTS = dg.AssetKey(["marts", "customer_segments"])
ML_SCORES = [dg.AssetKey(["ml", "churn_scores"]), dg.AssetKey(["ml", "clv_predictions"])]
DELIVERY = dict(group_name="delivery", pool=WAREHOUSE_POOL)


@dg.asset(
    key=["delivery", "segment_exports"],
    deps=[SEGMENTS],
    kinds={"duckdb", "parquet", "csv"},
    description=(
        "Tonight's segments and the changes since the previous export (entered / left), as "
        "Parquet and CSV with a manifest, in <LIFECYCLE_EXPORT_DIR>/<as_of_date>/ (written "
        "atomically). No PII: email_hash (salted sha256) only when LIFECYCLE_EXPORT_SALT is set."
    ),
    **DELIVERY,
)
def segment_exports(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    salt = export_salt()
    if salt is None:
        context.log.info("LIFECYCLE_EXPORT_SALT is not set: exporting without email_hash")
    with warehouse.connect(read_only=True) as con:
        result = export_segments(con, export_dir(), salt=salt)
    return dg.MaterializeResult(
        metadata={
            "as_of_date": str(result.as_of_date),
            "previous_as_of_date": str(result.previous_as_of_date or "none (first export)"),
            "folder": dg.MetadataValue.path(str(result.folder)),
            "dagster/row_count": result.rows["segments.parquet"],
            "entered": result.entered,
            "left": result.left,
            "email_hash": result.email_hash,
            "seconds": round(result.seconds, 2),
        }
    )


@dg.asset(
    key=["delivery", "published_warehouse"],
    deps=[SEGMENTS, *ML_SCORES],
    kinds={"duckdb"},
    description=(
        "Read-only snapshot of the marts and ml schemas for analysts: "
        "<LIFECYCLE_PUBLISHED_DIR>/lifecycle.duckdb, swapped in atomically after each "
        "successful run (open it with read_only=True; see docs/analysts.md). The score "
        "history (ml.churn_scores, ml.clv_predictions) for its newest "
        "LIFECYCLE_PUBLISHED_SCORE_DAYS as-of dates only (main.snapshot_tables says which)."
    ),
    **DELIVERY,
)
def published_warehouse(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    result = publish_snapshot(
        Path(warehouse.path),
        published_dir(),
        keep=published_keep(),
        score_days=SETTINGS.published_score_days,
    )
    for old in result.removed:
        context.log.info(f"removed old snapshot {old}")
    return dg.MaterializeResult(
        metadata={
            "as_of_date": str(result.as_of_date),
            "path": dg.MetadataValue.path(str(result.stable_path)),
            "snapshot": dg.MetadataValue.path(str(result.snapshot)),
            "tables": len(result.tables),
            "rows": dg.MetadataValue.json(result.tables),
            "score_windows": dg.MetadataValue.json(
                {
                    table: {"first": str(w.first), "last": str(w.last), "coverage": w.coverage}
                    for table, w in result.score_windows.items()
                }
            ),
            "megabytes": round(result.bytes / 1e6, 1),
            "seconds": round(result.seconds, 2),
        }
    )


defs = dg.Definitions(assets=[segment_exports, published_warehouse])
