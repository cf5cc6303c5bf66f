"""The ingest asset in Dagster: a refused file fails its run but not the other days."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import duckdb

LANDING = Path(os.environ["LIFECYCLE_LANDING_DIR"])
GOOD_DAY, BAD_DAY = "2025-02-01", "2025-02-02"  # outside the range other tests load


def test_bad_file_fails_only_its_day(tmp_path):
    from orchestration.contract import SOURCES
    from orchestration.defs.ingest import build_ingest_asset
    from orchestration.defs.shared import WarehouseResource

    orders = LANDING / "orders"
    orders.mkdir(parents=True, exist_ok=True)
    (orders / f"{GOOD_DAY}.csv").write_text(
        "order_id,customer_id,ordered_at,status,order_total\n"
        "X1,C1,2025-02-01T10:00:00Z,placed,12.50\n"
        "X2,C2,2025-02-01T11:00:00Z,lost,3.00\n"
    )
    bad = orders / f"{BAD_DAY}.csv"
    bad.write_text("order_id,customer_id,status\nX3,C3,placed\n")
    warehouse = tmp_path / "w.duckdb"
    try:
        with dg.instance_for_test() as instance:
            result = dg.materialize(
                [build_ingest_asset(SOURCES["orders"])],
                instance=instance,
                resources={"warehouse": WarehouseResource(path=str(warehouse))},
                tags={
                    "dagster/asset_partition_range_start": GOOD_DAY,
                    "dagster/asset_partition_range_end": BAD_DAY,
                },
                raise_on_error=False,
            )
            assert not result.success
            failure = next(e for e in result.all_events if e.is_step_failure)
            message = failure.step_failure_data.error.message + str(
                failure.step_failure_data.user_failure_data
            )
            assert str(bad) in message and "ordered_at" in message
        with duckdb.connect(str(warehouse), read_only=True) as con:
            loaded = con.execute("select order_id, _partition_date from raw.orders").fetchall()
            rejected = con.execute("select rule from raw.orders_rejected").fetchall()
        assert [(o, str(d)) for o, d in loaded] == [("X1", GOOD_DAY)]
        assert rejected == [("status_known",)]
    finally:
        for day in (GOOD_DAY, BAD_DAY):
            (orders / f"{day}.csv").unlink(missing_ok=True)
