"""Python asset checks (and transient-only retries) on a tiny real warehouse: loaded with
the real ingest, staging and marts tables made by hand; each check passes when consistent
and fails with its reason."""

import datetime as dt

import dagster as dg
import duckdb
import pytest

from orchestration.defs.checks import (
    build_reconciliation_check,
    count_landing_rows,
    customers_cover_staging,
    orders_match_staging,
)
from orchestration.defs.freshness import freshness_verdict, orders_fresh
from orchestration.defs.retries import TRANSIENT_RETRY, is_transient, non_transient
from orchestration.defs.shared import DAILY, WarehouseResource
from orchestration.ingest import LandingFileError, load_partitions

DAYS = [dt.date(2025, 3, 1), dt.date(2025, 3, 2)]
ORDERS = {
    DAYS[0]: "order_id,customer_id,ordered_at,status,order_total\n"
    "O1,C1,2025-03-01T10:00:00,placed,10\n"
    "\n"
    'O2,C2,2025-03-01T11:00:00,placed,"5"\n'
    "O3,C3,2025-03-01T12:00:00,lost,1\n"
    "O4,C4,2025-03-01T12:00:00,placed,1,surplus\n",
    DAYS[1]: "order_id,customer_id,ordered_at,status,order_total\n"
    "O5,C1,2025-03-02T09:00:00,placed,7\n"
    "O6,C5,2025-03-02T09:30:00,placed,-1\n",
}
REVIEWS = (
    '{"review_id":"R1","customer_id":"C1","rating":5,"created_at":"2025-03-02"}\n'
    "\n"
    '{"review_id":"R2","customer_id":"C2","rating":9,"created_at":"2025-03-02"}\n'
    "not json\n"
)
MODELS = """
create schema staging; create schema intermediate; create schema marts;
create view staging.stg_orders as
    select order_id, customer_id, cast(ordered_at as date) as order_date from raw.orders;
create table intermediate.int_as_of_date as
    select max(_partition_date) as as_of_date from raw.orders;
create table marts.fct_orders as select order_id, customer_id from staging.stg_orders;
create table marts.dim_customers as
    select distinct customer_id from staging.stg_orders
    union select 'C_PROSPECT';
"""


@pytest.fixture
def warehouse(tmp_path):
    landing = tmp_path / "landing"
    (landing / "orders").mkdir(parents=True)
    (landing / "reviews").mkdir()
    for day, text in ORDERS.items():
        (landing / "orders" / f"{day}.csv").write_text(text)
    (landing / "reviews" / f"{DAYS[1]}.jsonl").write_text(REVIEWS)
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        for source in ("orders", "reviews"):
            load_partitions(con, source, DAYS, landing)
        con.execute(MODELS)
    return path, landing


def run(check, path, **kwargs):
    context = dg.build_asset_check_context(
        resources={"warehouse": WarehouseResource(path=str(path))}
    )
    return check(context, **kwargs)


def test_recount_matches_what_the_ingest_read(tmp_path):
    """The independent recount agrees with the ingest on CSV, JSON lines and Parquet."""
    landing = tmp_path / "landing"
    (landing / "reviews").mkdir(parents=True)
    (landing / "reviews" / "2025-03-01.jsonl").write_text(REVIEWS)
    parquet = landing / "reviews" / "2025-03-02.parquet"
    duckdb.execute(
        f"copy (select 'R' || i as review_id, 'C1' as customer_id, 4 as rating, "
        f"timestamp '2025-03-02' as created_at from range(7) t(i)) to '{parquet}'"
    )
    with duckdb.connect() as con:
        results, _ = load_partitions(con, "reviews", DAYS, landing)
    assert (
        [r.read_rows for r in results]
        == [
            count_landing_rows(landing / "reviews" / "2025-03-01.jsonl"),
            count_landing_rows(parquet),
        ]
        == [4, 7]
    )


def test_checks_pass_on_a_consistent_warehouse(warehouse):
    path, landing = warehouse
    for source, landed in (("orders", 2), ("reviews", 4)):
        result = run(build_reconciliation_check(source, landing), path)
        assert result.passed, result.description
        # newest loaded day by default: 2025-03-02
        assert result.metadata["rows_landed"].value == landed
        assert result.metadata["partition_range"].value == "2025-03-02..2025-03-02"
    assert run(orders_match_staging, path).passed
    assert run(customers_cover_staging, path).passed


def test_mart_checks_hold_while_a_newer_day_lands_before_the_marts_are_rebuilt(warehouse):
    """Another run (a backfill) may load a newer day between this run's dbt build and its
    checks: the marts are compared with staging up to the as-of date they were built for."""
    path, landing = warehouse
    newer = DAYS[1] + dt.timedelta(days=1)
    (landing / "orders" / f"{newer}.csv").write_text(
        f"order_id,customer_id,ordered_at,status,order_total\nO8,C8,{newer}T09:00:00,placed,3\n"
    )
    with duckdb.connect(str(path)) as con:
        load_partitions(con, "orders", [newer], landing)
    assert run(orders_match_staging, path).passed
    assert run(customers_cover_staging, path).passed


def test_reconciliation_fails_when_rows_go_missing_or_appear(warehouse):
    path, landing = warehouse
    with duckdb.connect(str(path)) as con:
        con.execute("delete from raw.orders where order_id = 'O5'")
    result = run(build_reconciliation_check("orders", landing), path)
    assert not result.passed
    assert "2025-03-02: 2 landed != 0 loaded + 1 rejected" in result.description
    # a row appended to the file after it was loaded is not in the warehouse either
    with duckdb.connect(str(path)) as con:
        load_partitions(con, "orders", DAYS, landing)
    with (landing / "orders" / f"{DAYS[1]}.csv").open("a") as fh:
        fh.write("O7,C7,2025-03-02T10:00:00,placed,1\n")
    result = run(build_reconciliation_check("orders", landing), path)
    assert result.metadata["mismatched_days"].value == ["2025-03-02"]


def test_mart_checks_fail_with_the_counts(warehouse):
    path, _ = warehouse
    with duckdb.connect(str(path)) as con:
        con.execute("delete from marts.fct_orders where order_id = 'O1'")
        con.execute("insert into marts.fct_orders values ('O2', 'C2'), ('X9', 'C9')")
        con.execute("delete from marts.dim_customers where customer_id = 'C2'")
    orders = run(orders_match_staging, path)
    assert not orders.passed
    assert {k: orders.metadata[k].value for k in ("missing", "extra", "duplicates")} == {
        "missing": 1,
        "extra": 1,
        "duplicates": 1,
    }
    customers = run(customers_cover_staging, path)
    assert not customers.passed
    assert "1 of them missing" in customers.description


def test_freshness_allows_one_day_behind_yesterday_only():
    today = dt.date(2026, 5, 10)
    assert freshness_verdict(dt.date(2026, 5, 9), today)[0]
    assert freshness_verdict(dt.date(2026, 5, 8), today)[0]
    passed, message = freshness_verdict(dt.date(2026, 5, 7), today)
    assert not passed
    assert "newest partition 2026-05-07" in message and "2026-05-08" in message
    assert not freshness_verdict(None, today)[0]


def test_freshness_check_fails_loudly_on_an_old_warehouse(warehouse):
    path, _ = warehouse
    result = run(orders_fresh, path)
    assert not result.passed
    assert "STALE" in result.description and "2025-03-02" in result.description


def test_a_failed_reconciliation_blocks_downstream_assets(warehouse, tmp_path):
    """In a real run: the blocking check fails (the file it recounts has one more row than
    what was loaded) and the asset downstream of raw/orders is not materialized."""
    path, landing = warehouse
    tampered = tmp_path / "tampered"
    (tampered / "orders").mkdir(parents=True)
    (tampered / "orders" / f"{DAYS[1]}.csv").write_text(
        ORDERS[DAYS[1]] + "O7,C7,2025-03-02T10:00:00,placed,1\n"
    )

    @dg.asset(key=["raw", "orders"], partitions_def=DAILY)
    def orders(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> None:
        with warehouse.connect() as con:
            load_partitions(con, "orders", [dt.date.fromisoformat(context.partition_key)], landing)

    @dg.asset(deps=[orders])
    def downstream() -> None:
        pass

    def launch(check_landing):
        defs = dg.Definitions(
            assets=[orders, downstream],
            asset_checks=[build_reconciliation_check("orders", check_landing)],
            resources={"warehouse": WarehouseResource(path=str(path))},
            jobs=[dg.define_asset_job("all", selection=dg.AssetSelection.all())],
        )
        with dg.instance_for_test() as instance:
            result = defs.resolve_job_def("all").execute_in_process(
                instance=instance, partition_key=DAYS[1].isoformat(), raise_on_error=False
            )
        [check] = result.get_asset_check_evaluations()
        done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        return result.success, check, done

    success, check, done = launch(landing)
    assert success and check.passed and done == {"raw/orders", "downstream"}
    success, check, done = launch(tampered)
    assert not success and not check.passed and done == {"raw/orders"}
    assert "3 landed != 1 loaded + 1 rejected" in check.description


def attempts_of(error: Exception, policy: dg.RetryPolicy) -> tuple[bool, int]:
    """Run an asset failing once with ``error`` under ``non_transient`` and ``policy``."""
    calls = []

    @dg.asset(retry_policy=policy)
    def flaky() -> None:
        with non_transient():
            calls.append(1)
            if len(calls) == 1:
                raise error

    result = dg.materialize([flaky], raise_on_error=False)
    return result.success, len(calls)


def test_only_transient_errors_are_retried():
    fast = dg.RetryPolicy(max_retries=2, delay=0)
    lock = duckdb.IOException('IO Error: Could not set lock on file "w.duckdb"')
    assert is_transient(lock) and is_transient(TimeoutError()) and is_transient(OSError(5, "EIO"))
    assert not is_transient(FileNotFoundError()) and not is_transient(LandingFileError("x"))
    assert attempts_of(lock, fast) == (True, 2)
    assert attempts_of(OSError(5, "Input/output error"), fast) == (True, 2)
    assert attempts_of(LandingFileError("orders: columns missing"), fast) == (False, 1)
    assert attempts_of(dg.Failure("dbt test failed"), fast) == (False, 1)
    assert TRANSIENT_RETRY.max_retries == 3 and TRANSIENT_RETRY.backoff == dg.Backoff.EXPONENTIAL
