"""Build the dbt project on a small hand-made warehouse and check the lifecycle tables.

The fixture writes raw.* (DDL derived from orchestration/contract.py) and ml.* tables into a
temporary DuckDB file, runs ``dbt build`` (models, data tests and unit tests) through
``dbtRunner`` with a fixed as-of date and reads the results back with duckdb.
"""

from __future__ import annotations

import json
import math
import statistics
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from dbt.cli.main import dbtRunner

from orchestration.contract import META_COLUMNS, REJECTED_COLUMNS, SOURCES

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
AS_OF = date(2026, 6, 30)
ML_DDL = {
    "churn_scores": "customer_id VARCHAR, as_of_date DATE, churn_probability DOUBLE, "
    "model_version VARCHAR, scored_at TIMESTAMP",
    "clv_predictions": "customer_id VARCHAR, as_of_date DATE, p_alive DOUBLE, "
    "expected_orders_12m DOUBLE, expected_spend_12m DOUBLE, clv DOUBLE, clv_lower DOUBLE, "
    "clv_upper DOUBLE, model_version VARCHAR, scored_at TIMESTAMP",
    "model_runs": "run_id VARCHAR, model_kind VARCHAR, model_version VARCHAR, "
    "trained_at TIMESTAMP, as_of_date DATE, metrics_json VARCHAR, is_champion BOOLEAN",
}


def d(text: str) -> date:
    return date.fromisoformat(text)


def create_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    """Create every raw, raw _rejected and ml table exactly as the warehouse notes say."""
    con.execute("create schema raw; create schema ml")
    for source in SOURCES.values():
        cols = [f"{c.name} {c.sql_type}" for c in source.columns]
        cols += [f"{name} {sql_type}" for name, sql_type in META_COLUMNS.items()]
        con.execute(f"create table raw.{source.name} ({', '.join(cols)})")
        rejected = ", ".join(f"{name} {sql_type}" for name, sql_type in REJECTED_COLUMNS.items())
        con.execute(f"create table raw.{source.name}_rejected ({rejected})")
    for table, ddl in ML_DDL.items():
        con.execute(f"create table ml.{table} ({ddl})")


class Landing:
    """Collects raw rows per source, adding the META_COLUMNS like the ingest does."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple]] = {name: [] for name in SOURCES}

    def add(self, source: str, partition: date, *values: object, extra: dict | None = None):
        row_number = 1 + sum(1 for r in self.rows[source] if r[-5] == partition)
        meta = (partition, f"{source}/{partition}.csv", row_number, json.dumps(extra or {}))
        self.rows[source].append((*values, *meta, datetime(2026, 7, 1)))

    def order(self, oid, cid, ordered, total, final="delivered", delay=-1, promised=5):
        """Land the CDC versions of one order: placed, shipped, then the final status."""
        at = datetime.fromisoformat(ordered) + timedelta(hours=10)
        promise = at.date() + timedelta(days=promised)
        delivered = datetime.combine(promise + timedelta(days=delay), datetime.min.time())
        base = (oid, cid, at)
        tail = ("EUR", 0, 4.9, 2, "web", promise)
        self.add("orders", at.date(), *base, "placed", total, *tail, None, None)
        if final == "cancelled":
            self.add("orders", at.date(), *base, "cancelled", total, *tail, None, at)
            return
        steps = [("shipped", at + timedelta(days=1), None)]
        if final in ("delivered", "returned"):
            steps.append(("delivered", delivered, delivered))
        if final == "returned":
            steps.append(("returned", delivered + timedelta(days=7), delivered))
        for status, updated, delivered_at in steps:
            if updated.date() <= AS_OF:
                self.add(
                    "orders", updated.date(), *base, status, total, *tail, delivered_at, updated
                )


def landed_data() -> Landing:
    """A few dozen customers covering every lifecycle and segment rule."""
    land = Landing()
    signups = {
        "c01": "2026-06-01", "c02": "2025-12-20", "c03": "2025-02-01", "c04": "2024-09-01",
        "c05": "2025-10-15", "c06": "2026-05-20", "c07": "2026-04-01", "c09": "2026-06-01",
        "c10": "2025-09-01", "c11": "2025-06-01", "c12": "2026-04-01", "c13": "2026-03-01",
        "c14": "2026-02-01", "c15": "2026-06-01", "c16": "2025-09-15", "c17": "2025-06-01",
        "c18": "2026-06-05",
    }  # fmt: skip
    for i in range(1, 16):
        signups[f"f{i:02d}"] = "2025-08-01"
    for cid, signed in signups.items():
        at = datetime.fromisoformat(signed) + timedelta(hours=9)
        email = f" {cid.upper()}@Example.com "
        land.add("customers", at.date(), cid, at, email, "DE", "paid_search")
    for cid, day, total in [("c01", "2026-06-20", 60), ("c02", "2026-01-10", 45),
                            ("c03", "2025-03-01", 80), ("c04", "2024-10-01", 70),
                            ("c04", "2026-06-15", 75), ("c08", "2026-03-01", 55),
                            ("c08", "2026-04-15", 65), ("c12", "2026-05-01", 120),
                            ("c12", "2026-05-20", 110), ("c13", "2026-03-15", 90),
                            ("c13", "2026-05-10", 95), ("c15", "2026-06-25", 30),
                            ("c15", "2026-06-25", 40), ("c18", "2026-06-10", 150)]:  # fmt: skip
        land.order(f"o-{cid}-{day}-{total}", cid, day, total)
    for k in range(9):
        land.order(f"o-c05-{k}", "c05", str(d("2025-11-01") + timedelta(days=30 * k)), 50)
    for k in range(6):
        land.order(f"o-c11-{k}", "c11", str(d("2026-01-05") + timedelta(days=30 * k)), 900)
        land.order(f"o-c17-{k}", "c17", str(d("2026-01-09") + timedelta(days=30 * k)), 700)
    for k, day in enumerate(["2025-10-01", "2025-11-01", "2025-12-01"]):
        land.order(f"o-c16-{k}", "c16", day, 400)
    for k, day in enumerate(["2026-02-01", "2026-04-01"]):
        land.order(f"o-c10-{k}", "c10", day, 300)
    land.order("o-c10-late", "c10", "2026-06-05", 350, delay=10)  # promised 06-10, got 06-20
    land.order("o-c07", "c07", "2026-05-01", 80, final="cancelled")
    land.order("o-c14-0", "c14", "2026-03-01", 100, final="returned")
    land.order("o-c14-1", "c14", "2026-05-01", 100, final="returned")
    for i in range(1, 16):
        day = d("2025-09-01") + timedelta(days=3 * i)
        for k in range(2 + i % 3):
            land.order(f"o-f{i:02d}-{k}", f"f{i:02d}", str(day), 40 + 5 * i)
            day += timedelta(days=20 + (i * 7 + k * 11) % 41)
    # CDC edge cases on c06: exact duplicate re-landed, null updated_at, updated_at tie
    land.order("o-c06", "c06", "2026-06-01", 99)
    dup = next(r for r in land.rows["orders"] if r[0] == "o-c06" and r[3] == "shipped")
    land.add("orders", d("2026-06-03"), *dup[:13])
    tie_at = datetime(2026, 6, 12, 8)
    tail = ("EUR", 0, 4.9, 1, "app", d("2026-06-16"))
    land.add("orders", d("2026-06-12"), "o-c06-tie", "c06", tie_at, "placed", 20, *tail, None, None)
    land.add("orders", d("2026-06-13"), "o-c06-tie", "c06", tie_at, "shipped", 20, *tail, None,
             datetime(2026, 6, 14))  # fmt: skip
    land.add("orders", d("2026-06-15"), "o-c06-tie", "c06", tie_at, "delivered", 20, *tail,
             datetime(2026, 6, 14), datetime(2026, 6, 14))  # fmt: skip
    for rid, cid, oid, rating, day in [("r1", "c10", "o-c10-late", 1, "2026-06-21"),
                                       ("r2", "c13", "o-c13-2026-05-10-95", 5, "2026-05-15"),
                                       ("r3", "c05", "o-c05-8", 4, "2026-07-05"),
                                       ("r4", "c05", "o-ghost", 3, "2026-06-01")]:  # fmt: skip
        at = datetime.fromisoformat(day) + timedelta(hours=12)
        land.add("reviews", at.date(), rid, cid, oid, rating, "Title", f"Body of {cid}", at)
    for sid, cid, score, day in [("s1", "c10", 3, "2026-06-21"), ("s2", "c13", 10, "2026-05-20"),
                                 ("s3", "c05", 8, "2026-04-01")]:  # fmt: skip
        at = datetime.fromisoformat(day) + timedelta(hours=15)
        land.add("surveys", at.date(), sid, cid, "nps_post_purchase", score, "call me", at)
    for kid, cid, day, order_id in [("k1", "c12", "2026-06-25", None),
                                    ("k2", "c09", "2026-06-20", None),
                                    ("k3", "c05", "2026-06-09", "o-c05-8")]:  # fmt: skip
        at = datetime.fromisoformat(day) + timedelta(hours=18)
        land.add("checkouts", at.date(), kid, cid, at, 75, order_id)
    return land


def ml_rows() -> dict[str, list[tuple]]:
    """Scores of three runs; the 2026-07-15 run is after the as-of date and must be ignored."""
    churn, clv = [], []
    for run, factor in [(d("2026-05-31"), 0.5), (d("2026-06-29"), 1.0), (d("2026-07-15"), 0.1)]:
        scored = datetime.combine(run, datetime.min.time()) + timedelta(hours=3)
        for cid, p, value in [("c16", 0.8, 300.0), ("c05", 0.2, 200.0), ("c18", 0.1, 2500.0),
                              ("c11", 0.05, 3000.0), ("c01", 0.3, 80.0)]:  # fmt: skip
            churn.append((cid, run, p * factor, f"churn-{run}", scored))
            clv.append((cid, run, 0.9, 1.5, value, value * factor, 0.0, 1e4, "clv-1", scored))
    runs = [("run-1", "churn", "churn-1", datetime(2026, 6, 29), d("2026-06-29"), "{}", True)]
    return {"churn_scores": churn, "clv_predictions": clv, "model_runs": runs}


def run_dbt(target_dir: Path, *args: str, as_of: date | None = AS_OF) -> None:
    """Run a dbt command (LIFECYCLE_WAREHOUSE set by the caller); fail the test if dbt fails."""
    cli = ["--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR)]
    cli += ["--target-path", str(target_dir), "--log-path", str(target_dir)]
    if as_of is not None:
        cli += ["--vars", json.dumps({"as_of_date": as_of.isoformat()})]
    result = dbtRunner().invoke([*args, *cli])
    failures = [
        f"{r.node.unique_id}: {r.status} {r.message}"
        for r in (result.result or [])
        if str(r.status) not in ("success", "pass", "warn")
    ]
    assert result.success and not failures, (result.exception, failures)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    """A built warehouse: raw + ml fixture data, then ``dbt build`` (models + all tests)."""
    tmp = tmp_path_factory.mktemp("dbt")
    path = tmp / "lifecycle.duckdb"
    with duckdb.connect(str(path)) as con:
        create_warehouse(con)
        for source, rows in landed_data().rows.items():
            marks = ", ".join("?" * len(rows[0]))
            con.executemany(f"insert into raw.{source} values ({marks})", rows)
        for table, rows in ml_rows().items():
            marks = ", ".join("?" * len(rows[0]))
            con.executemany(f"insert into ml.{table} values ({marks})", rows)
    mp = pytest.MonkeyPatch()
    mp.setenv("LIFECYCLE_WAREHOUSE", str(path))
    try:
        run_dbt(tmp / "target", "build")
    finally:
        mp.undo()
    con = duckdb.connect(str(path))  # dbt-duckdb may keep its in-process handle open
    yield con
    con.close()


def one(con: duckdb.DuckDBPyConnection, sql: str, *params: object) -> tuple:
    row = con.execute(sql, params).fetchone()
    assert row is not None, sql
    return row


def stage_of(con: duckdb.DuckDBPyConnection, cid: str) -> str:
    return one(con, "select lifecycle_stage from marts.dim_customers where customer_id = ?", cid)[0]


def spells(con: duckdb.DuckDBPyConnection, cid: str) -> list[tuple[str, date]]:
    sql = """select stage, valid_from from marts.customer_lifecycle_history
             where customer_id = ? order by valid_from"""
    return con.execute(sql, [cid]).fetchall()


def test_schemas_and_no_pii(warehouse: duckdb.DuckDBPyConnection) -> None:
    schemas = {
        r[0] for r in warehouse.execute("select schema_name from duckdb_schemas()").fetchall()
    }
    assert {"staging", "intermediate", "marts"} <= schemas
    assert not any(s.startswith("main_") for s in schemas)
    pii = warehouse.execute(
        """select table_schema, table_name, column_name from information_schema.columns
           where table_schema in ('staging', 'intermediate', 'marts')
             and column_name in ('email', 'title', 'body', 'comment')"""
    ).fetchall()
    assert pii == []
    email_hash = one(
        warehouse, "select email_hash from staging.stg_customers where customer_id='c01'"
    )[0]
    assert email_hash == one(warehouse, "select md5('c01@example.com')")[0]


def test_latest_order_version_wins(warehouse: duckdb.DuckDBPyConnection) -> None:
    raw = one(warehouse, "select count(*) from raw.orders where order_id = 'o-c06'")[0]
    events = one(warehouse, "select count(*) from staging.stg_order_events where order_id='o-c06'")
    assert events[0] == raw - 1  # the re-landed exact duplicate is dropped
    status, versions, late, delay = one(
        warehouse,
        """select status, version_count, is_late, delivery_delay_days
           from marts.fct_orders where order_id = 'o-c06'""",
    )
    assert (status, versions, late, delay) == ("delivered", 3, False, -1)
    assert one(warehouse, "select status from marts.fct_orders where order_id = 'o-c06-tie'") == (
        "delivered",
    )  # same updated_at: the later partition wins
    late = one(
        warehouse,
        "select is_late, delivery_delay_days, review_rating from marts.fct_orders "
        "where order_id = 'o-c10-late'",
    )
    assert late == (True, 10, 1)
    n_orders = one(warehouse, "select count(distinct order_id) from raw.orders")[0]
    assert one(warehouse, "select count(*) from marts.fct_orders")[0] == n_orders


def test_customers_known_from_orders_and_counts(warehouse: duckdb.DuckDBPyConnection) -> None:
    row = one(
        warehouse,
        "select has_customer_record, orders_count, lifecycle_stage from marts.dim_customers "
        "where customer_id = 'c08'",
    )
    assert row[:2] == (False, 2) and row[2] != "prospect"
    raw_ids = warehouse.execute(
        "select customer_id from raw.customers union select customer_id from raw.orders"
    ).fetchall()
    assert one(warehouse, "select count(*) from marts.dim_customers")[0] == len(raw_ids)
    c14 = one(warehouse, "select revenue, returned_orders_count from marts.dim_customers "
              "where customer_id = 'c14'")  # fmt: skip
    assert c14 == (0, 2)
    assert stage_of(warehouse, "c14") != "prospect"  # returned orders still count as purchases


def test_lifecycle_stages(warehouse: duckdb.DuckDBPyConnection) -> None:
    assert stage_of(warehouse, "c01") == "new"
    assert stage_of(warehouse, "c05") == "active"
    assert stage_of(warehouse, "c07") == "prospect"  # cancelled orders only
    assert stage_of(warehouse, "c09") == "prospect"
    c15 = one(warehouse, "select orders_count from marts.dim_customers where customer_id='c15'")
    assert stage_of(warehouse, "c15") == "new" and c15 == (2,)
    # one-time buyer: new -> active -> at_risk via the population median gap
    gaps = warehouse.execute(
        "select gap_days from intermediate.int_customer_purchase_days where gap_days is not null"
    ).fetchall()
    at_risk_after = math.ceil(2.5 * max(statistics.median(g[0] for g in gaps), 7))
    expected_at_risk = max(d("2026-01-10") + timedelta(days=at_risk_after), d("2026-02-09"))
    assert spells(warehouse, "c02")[-1] == ("at_risk", expected_at_risk)
    assert [s for s, _ in spells(warehouse, "c02")][:2] == ["prospect", "new"]
    assert spells(warehouse, "c03")[-1] == ("lapsed", d("2026-03-01"))
    c04 = spells(warehouse, "c04")
    assert c04[-2:] == [("lapsed", d("2025-10-01")), ("reactivated", d("2026-06-15"))]


def test_spells_are_contiguous_and_event_sized(warehouse: duckdb.DuckDBPyConnection) -> None:
    bad = one(
        warehouse,
        """select count(*) from (
             select valid_to, lead(valid_from) over (partition by customer_id order by valid_from)
                    as next_from
             from marts.customer_lifecycle_history) as s
           where valid_to is distinct from next_from""",
    )[0]
    assert bad == 0
    n_spells, n_customers = one(
        warehouse,
        "select count(*), count(distinct customer_id) from marts.customer_lifecycle_history",
    )
    n_days = (AS_OF - d("2024-09-01")).days
    assert n_customers == one(warehouse, "select count(*) from marts.dim_customers")[0]
    assert n_spells < 6 * n_customers < n_customers * n_days


def test_segments(warehouse: duckdb.DuckDBPyConnection) -> None:
    n, distinct = one(
        warehouse, "select count(*), count(distinct customer_id) from marts.customer_segments"
    )
    assert n == distinct == one(warehouse, "select count(*) from marts.dim_customers")[0]
    rows = warehouse.execute(
        "select customer_id, segment, reasons, churn_probability, clv from marts.customer_segments"
    ).fetchall()
    seg = {r[0]: r[1:] for r in rows}
    assert seg["c10"][0] == "service_recovery"
    assert "late_delivery_2026-06-20" in seg["c10"][1] and "detractor_score_3" in seg["c10"][1]
    assert seg["c11"][0] == "vip_nurture"
    assert seg["c18"][0] == "high_potential_newcomer" and seg["c18"][3] == 2500.0
    assert seg["c16"][0] == "win_back" and seg["c16"][2] == pytest.approx(0.8)  # not the July run
    assert "churn_p=0.80" in seg["c16"][1]
    assert seg["c12"][0] == "cart_recovery"
    assert seg["c13"][0] == "advocacy_ask"
    assert seg["c03"][0] == "reactivation"
    assert seg["c09"][0] == seg["c07"][0] == "prospect"
    assert seg["f01"][2] is None and seg["f01"][3] is None  # not scored: null, no rule fires


def test_builds_with_orders_only_and_empty_ml(tmp_path: Path) -> None:
    """Only orders landed, ml tables empty, no as_of_date var: everything still builds."""
    path = tmp_path / "orders_only.duckdb"
    with duckdb.connect(str(path)) as con:
        create_warehouse(con)
        rows = landed_data().rows["orders"]
        con.executemany(f"insert into raw.orders values ({', '.join('?' * len(rows[0]))})", rows)
    mp = pytest.MonkeyPatch()
    mp.setenv("LIFECYCLE_WAREHOUSE", str(path))
    try:
        # no as_of_date var: the macro falls back to the latest raw.orders partition
        run_dbt(tmp_path / "target", "build", "--exclude", "test_type:unit", as_of=None)
    finally:
        mp.undo()
    with duckdb.connect(str(path)) as con:
        n_customers = one(con, "select count(distinct customer_id) from raw.orders")[0]
        dim = one(con, "select count(*), bool_or(has_customer_record) from marts.dim_customers")
        assert dim == (n_customers, False)
        seg = one(
            con,
            "select count(*), count(churn_probability), count(clv), "
            "count(*) filter (where segment in ('win_back', 'high_potential_newcomer')) "
            "from marts.customer_segments",
        )
        assert seg == (n_customers, 0, 0, 0)
        assert stage_of(con, "c07") == "prospect"  # known from a cancelled order only
        as_of = one(con, "select as_of_date from intermediate.int_as_of_date")
        assert as_of == one(con, "select max(_partition_date) from raw.orders")
