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
import numpy as np
import pytest
from dbt.cli.main import dbtRunner

from orchestration.contract import SOURCES
from orchestration.ingest import ensure_raw_tables
from orchestration.warehouse import ensure_ml_tables

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
AS_OF = date(2026, 6, 30)


def d(text: str) -> date:
    return date.fromisoformat(text)


def create_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    """Create every raw, raw _rejected and ml table exactly as the pipeline does."""
    ensure_raw_tables(con)
    ensure_ml_tables(con)


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
        land.order(f"o-c16-{k}", "c16", day, 400, delay=3 if k == 2 else -1)  # last one late
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
    add_bad_input(land)
    return land


def add_bad_input(land: Landing) -> None:
    """Records breaking data-quality expectations: kept, superseded or dropped, and counted."""
    c01 = next(r for r in land.rows["customers"] if r[0] == "c01")
    land.add("customers", d("2026-06-10"), *c01[:5])  # the same customer landed again
    # a stale order version: older updated_at than the delivered one, landed months later
    at = datetime(2025, 11, 1, 10)
    tail = ("EUR", 0, 4.9, 2, "web", d("2025-11-06"), None, at + timedelta(days=2))
    land.add("orders", d("2026-06-05"), "o-c05-0", "c05", at, "shipped", 50, *tail)
    at = datetime(2026, 6, 18, 12)  # a review and a survey from nobody the warehouse knows
    land.add("reviews", at.date(), "r5", "ghost-1", None, 2, "Title", "Body", at)
    at = datetime(2026, 6, 15, 15)
    land.add("surveys", at.date(), "s4", "ghost-2", "nps_post_purchase", 9, None, at)
    at = datetime(2026, 6, 22, 18)  # a completed checkout of an unknown customer and order
    land.add("checkouts", at.date(), "k4", "ghost-3", at, 75, "o-missing")


def ml_rows() -> dict[str, list[tuple]]:
    """Scores of three runs; the 2026-07-15 run is after the as-of date and must be ignored."""
    churn, clv = [], []
    for run, factor in [(d("2026-05-31"), 0.5), (d("2026-06-29"), 1.0), (d("2026-07-15"), 0.1)]:
        scored = datetime.combine(run, datetime.min.time()) + timedelta(hours=3)
        for cid, p, value in [("c16", 0.8, 300.0), ("c05", 0.2, 200.0), ("c18", 0.1, 2500.0),
                              ("c11", 0.05, 3000.0), ("c01", 0.3, 80.0)]:  # fmt: skip
            churn.append((cid, run, p * factor, f"churn-{run}", scored))
            clv.append(  # ..., expected_orders_lower / _upper around expected_orders_12m 1.5
                (cid, run, 0.9, 1.5, value, value * factor, 0.0, 1e4, "clv-1", scored, 1.0, 2.0)
            )
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
        for r in getattr(result.result, "results", None) or []
        if str(r.status) not in ("success", "pass", "warn")
    ]
    assert result.success and not failures, (result.exception, failures)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
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
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIFECYCLE_WAREHOUSE", str(path))
        run_dbt(tmp / "target", "build")
    return path


@pytest.fixture(scope="module")
def warehouse(built: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(built))  # dbt-duckdb may keep its in-process handle open
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
    # one-time buyer: new -> at_risk via the population median gap of the purchase month (gaps
    # of purchase days in the 365 days before the month starts)
    gaps = warehouse.execute(
        "select gap_days from intermediate.int_customer_purchase_days "
        "where gap_days is not null and purchase_date >= ? and purchase_date < ?",
        [d("2025-01-01"), d("2026-01-01")],
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


def month(day: date) -> date:
    return day.replace(day=1)


def by_key(warehouse: duckdb.DuckDBPyConnection, sql: str) -> dict[object, tuple]:
    """Rows of a query keyed by their first column."""
    return {r[0]: r[1:] for r in warehouse.execute(sql).fetchall()}


def latest_raw(source: str) -> list[tuple]:
    """The latest landing of each record of a source, landed up to the as-of date."""
    rows = [r for r in landed_data().rows[source] if r[-5] <= AS_OF]
    return list({r[0]: r for r in sorted(rows, key=lambda r: (r[-5], r[-3]))}.values())


def test_review_summary(warehouse: duckdb.DuckDBPyConnection) -> None:
    late = dict(warehouse.execute("select order_id, is_late from marts.fct_orders").fetchall())
    expected: dict[date, list[tuple]] = {}
    for _, _, order_id, rating, _, _, created, *_ in latest_raw("reviews"):
        if created.date() <= AS_OF:
            expected.setdefault(month(created.date()), []).append((order_id, rating))
    got = by_key(
        warehouse,
        "select review_month, reviews, mean_rating, low_rating_share, reviews_unknown_order, "
        "reviews_late_order, mean_rating_late_order from marts.review_summary",
    )
    assert set(got) == set(expected)
    for key, rows in expected.items():
        ratings = [r for _, r in rows]
        late_ratings = [r for o, r in rows if late.get(o)]
        unknown = sum(1 for o, _ in rows if o is not None and o not in late)
        assert got[key][:5] == (
            len(rows),
            pytest.approx(statistics.mean(ratings)),
            pytest.approx(sum(r <= 2 for r in ratings) / len(rows)),
            unknown,
            len(late_ratings),
        )
        assert got[key][5] == (statistics.mean(late_ratings) if late_ratings else None)
    assert got[d("2026-06-01")][3:5] == (1, 1)  # r4 names an order that never landed


def test_delivery_experience(warehouse: duckdb.DuckDBPyConnection) -> None:
    orders = warehouse.execute(
        "select customer_id, delivered_date, delivery_delay_days, is_late from marts.fct_orders "
        "where delivered_date is not null"
    ).fetchall()
    churned = warehouse.execute(
        "select customer_id, valid_from from marts.customer_lifecycle_history "
        "where stage in ('at_risk', 'lapsed')"
    ).fetchall()
    got = by_key(
        warehouse,
        "select delivery_month, delivered_orders, late_orders, delay_days_p50, delay_days_p90, "
        "delay_days_max, late_customers, late_customers_later_at_risk_share, "
        "on_time_customers, on_time_customers_later_at_risk_share "
        "from marts.delivery_experience",
    )
    months = {month(o[1]) for o in orders}
    assert set(got) == months
    for key in months:
        rows = [o for o in orders if month(o[1]) == key]
        delays = [o[2] for o in rows]
        customers: dict[str, list[tuple]] = {}
        for o in rows:
            customers.setdefault(o[0], []).append(o)
        groups: dict[bool, list[bool]] = {True: [], False: []}
        for cid, mine in customers.items():
            last = max(o[1] for o in mine)
            later = any(c == cid and start > last for c, start in churned)
            groups[any(o[3] for o in mine)].append(later)
        shares = [statistics.mean(g) if g else None for g in (groups[True], groups[False])]
        assert got[key] == (
            len(rows),
            sum(o[3] for o in rows),
            pytest.approx(float(np.percentile(delays, 50))),
            pytest.approx(float(np.percentile(delays, 90))),
            max(delays),
            len(groups[True]),
            shares[0],
            len(groups[False]),
            pytest.approx(shares[1]),
        )
    # c16's late December delivery, then at_risk: the churn link is visible
    assert got[d("2025-12-01")][5:7] == (1, 1.0)


def test_purchase_conversion_and_cohorts(warehouse: duckdb.DuckDBPyConnection) -> None:
    days: dict[str, set[date]] = {}
    for cid, order_date in warehouse.execute(
        "select customer_id, order_date from marts.fct_orders where not is_cancelled"
    ).fetchall():
        days.setdefault(cid, set()).add(order_date)
    cohorts: dict[date, list[list[date]]] = {}
    for purchase_days in days.values():
        ordered = sorted(purchase_days)
        cohorts.setdefault(month(ordered[0]), []).append(ordered)
    got = by_key(
        warehouse,
        "select cohort_month, customers, second_purchase_customers, third_purchase_customers, "
        "third_after_second_rate, median_days_to_second_purchase from marts.purchase_conversion",
    )
    assert set(got) == set(cohorts)
    for key, members in cohorts.items():
        gaps = [(m[1] - m[0]).days for m in members if len(m) > 1]
        second, third = len(gaps), sum(len(m) > 2 for m in members)
        assert got[key] == (
            len(members),
            second,
            third,
            pytest.approx(third / second) if second else None,
            statistics.median(gaps) if gaps else None,
        )
    month_zero = by_key(
        warehouse,
        "select cohort_month, customers, retention_rate from marts.cohort_retention "
        "where months_since_first_order = 0",
    )
    assert month_zero == {k: (len(v), 1.0) for k, v in cohorts.items()}
    c15 = [v for v in cohorts[d("2026-06-01")] if v[0] == d("2026-06-25")]
    assert c15 == [[d("2026-06-25")]]  # two same-day orders are one purchase


def test_nps_monthly_by_channel_and_stage(warehouse: duckdb.DuckDBPyConnection) -> None:
    channel = {r[0]: r[4] for r in latest_raw("customers")}
    spells_ = warehouse.execute(
        "select customer_id, stage, valid_from, valid_to from marts.customer_lifecycle_history"
    ).fetchall()
    counts: dict[tuple, list[int]] = {}
    for _, cid, _, score, _, responded, *_ in latest_raw("surveys"):
        day = responded.date()
        stage = next(
            (s for c, s, lo, hi in spells_ if c == cid and lo <= day and (hi is None or day < hi)),
            "unknown",
        )
        for dim, value in [("all", "all"), ("acquisition_channel", channel.get(cid, "unknown")),
                           ("lifecycle_stage", stage)]:  # fmt: skip
            counts.setdefault((month(day), dim, value), []).append(score)
    got = {
        r[:3]: r[3:]
        for r in warehouse.execute(
            "select response_month, dimension, dimension_value, responses, promoters, "
            "detractors, nps from marts.nps_monthly"
        ).fetchall()
    }
    assert set(got) == set(counts)
    for key, scores in counts.items():
        promoters, detractors = sum(s >= 9 for s in scores), sum(s <= 6 for s in scores)
        nps = 100 * (promoters - detractors) / len(scores)
        assert got[key] == (len(scores), promoters, detractors, pytest.approx(nps))
    june = d("2026-06-01")
    assert got[(june, "acquisition_channel", "unknown")][:3] == (1, 1, 0)  # ghost-2, kept
    assert got[(june, "lifecycle_stage", "unknown")][0] == 1


def test_data_quality_issues(warehouse: duckdb.DuckDBPyConnection) -> None:
    land = landed_data()
    rows = {s: [r for r in land.rows[s] if r[-5] <= AS_OF] for s in land.rows}
    expected: dict[tuple[str, date], int] = {}

    def count(issue: str, partition: date) -> None:
        expected[(issue, partition)] = expected.get((issue, partition), 0) + 1

    first_landing: dict[tuple[str, str], date] = {}
    for source in ("customers", "reviews", "surveys", "checkouts"):
        for r in sorted(rows[source], key=lambda r: (r[-5], r[-3])):
            if (source, r[0]) in first_landing:
                count("duplicate_landing", r[-5])
            first_landing.setdefault((source, r[0]), r[-5])
    seen: set[tuple] = set()
    newest: dict[str, datetime] = {}
    order_first: dict[str, tuple[str, date]] = {}
    for r in sorted(rows["orders"], key=lambda r: (r[-5], r[-3])):
        if r[:13] in seen:
            count("duplicate_order_version", r[-5])
            continue
        seen.add(r[:13])
        updated = r[12] or r[2]
        if r[0] in newest and updated < newest[r[0]]:
            count("stale_order_version", r[-5])
        newest[r[0]] = max(updated, newest.get(r[0], updated))
        order_first.setdefault(r[0], (r[1], r[-5]))
    customer_ids = {r[0] for r in rows["customers"]}
    known = customer_ids | {c for c, _ in order_first.values()}
    for cid, partition in order_first.values():
        if cid not in customer_ids:
            count("order_unknown_customer", partition)
    for source, order_col in [("reviews", 2), ("surveys", None), ("checkouts", 4)]:
        for r in latest_raw(source):
            partition = first_landing[(source, r[0])]
            if r[1] not in known:
                count(f"{source[:-1]}_unknown_customer", partition)
            if order_col is not None and r[order_col] not in (None, *order_first):
                count(f"{source[:-1]}_unknown_order", partition)
    got = {
        r[:2]: r[2]
        for r in warehouse.execute(
            "select issue_type, partition_date, records from marts.data_quality_issues"
        ).fetchall()
    }
    assert got == expected
    assert len({issue for issue, _ in got}) == 9  # the fixture exercises every issue type
    # and the rules hold: the stale version and the duplicate change nothing
    assert one(warehouse, "select status from marts.fct_orders where order_id = 'o-c05-0'") == (
        "delivered",
    )
    n_customers = one(warehouse, "select count(*) from marts.dim_customers")[0]
    assert n_customers == len(known)  # ghosts are not customers; c01 is there once


def test_docs_generate_and_every_mart_column_described(built: Path) -> None:
    target = built.parent / "target"  # the build's manifest: only the catalog is new
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIFECYCLE_WAREHOUSE", str(built))
        run_dbt(target, "docs", "generate", "--no-compile")
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    marts = {
        node["name"]: node
        for key, node in manifest["nodes"].items()
        if key.startswith("model.") and node["schema"] == "marts"
    }
    new = {"review_summary", "delivery_experience", "purchase_conversion", "data_quality_issues"}
    assert new <= set(marts)
    for name, node in marts.items():
        assert node["description"].strip(), name
        assert node["config"]["contract"]["enforced"], name
        columns = set(catalog["nodes"][node["unique_id"]]["columns"])
        described = {c for c, v in node["columns"].items() if v["description"].strip()}
        assert columns == described, (name, columns ^ described)
