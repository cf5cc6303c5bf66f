"""Ingest of good and bad landing files into raw.<source> (real DuckDB files)."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pandas as pd
import pytest

from orchestration.contract import SOURCES
from orchestration.ingest import LandingFileError, landing_file, load_partition

DAY = dt.date(2025, 3, 1)
HEADER = "order_id,customer_id,ordered_at,status,order_total,currency,coupon_code\n"
GOOD = [
    "O1,C1,2025-03-01T10:00:00Z,placed,10.50,EUR,SPRING\n",
    "O2,C2,2025-03-01 12:00:00+02:00,placed,0,EUR,\n",
]
BAD = {
    "missing_order_id": ",C3,2025-03-01T10:00:00,placed,1,EUR,\n",
    "missing_customer_id": "O4,,2025-03-01T10:00:00,placed,1,EUR,\n",
    "invalid_ordered_at": "O5,C5,yesterday,placed,1,EUR,\n",
    "invalid_order_total": "O6,C6,2025-03-01T10:00:00,placed,ten,EUR,\n",
    "status_known": "O7,C7,2025-03-01T10:00:00,lost,1,EUR,\n",
    "order_total_non_negative": "O8,C8,2025-03-01T10:00:00,placed,-5,EUR,\n",
    "currency_iso4217": "O9,C9,2025-03-01T10:00:00,placed,5,euro,\n",
    "malformed_too_many_columns": "O10,C10,2025-03-01T10:00:00,placed,5,EUR,,surplus\n",
}


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield c
    c.close()


def write(landing, source, day, text, ext="csv"):
    path = landing / source / f"{day.isoformat()}.{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_every_rejection_reason_is_kept_with_file_row_and_rule(tmp_path, con):
    path = write(tmp_path, "orders", DAY, HEADER + "".join(GOOD) + "".join(BAD.values()))
    result = load_partition(con, "orders", DAY, tmp_path)

    assert result.loaded_rows == 2
    assert result.rejected_by_rule == {rule: 1 for rule in BAD}
    assert result.read_rows == result.loaded_rows + result.rejected_rows == 2 + len(BAD)
    rejected = con.execute(
        "select rule, _row_number, _source_file, reason, record from raw.orders_rejected"
    ).df()
    # the row number points at the line in the file (header is line 1, row n is line n+1)
    expected_rows = {rule: 3 + i for i, rule in enumerate(BAD)}
    assert dict(zip(rejected["rule"], rejected["_row_number"], strict=True)) == expected_rows
    assert set(rejected["_source_file"]) == {str(path)}
    assert rejected["reason"].str.len().min() > 5
    record = rejected.set_index("rule").loc["status_known", "record"]
    assert json.loads(record)["status"] == "lost"


def test_values_are_typed_utc_and_extras_kept(tmp_path, con):
    write(tmp_path, "orders", DAY, HEADER + "".join(GOOD))
    load_partition(con, "orders", DAY, tmp_path)
    rows = con.execute(
        "select order_id, ordered_at, order_total, _partition_date, _extra, discount_total "
        "from raw.orders order by order_id"
    ).fetchall()
    assert rows[0][1] == dt.datetime(2025, 3, 1, 10, 0)
    assert rows[1][1] == dt.datetime(2025, 3, 1, 10, 0)  # +02:00 converted to UTC
    assert float(rows[0][2]) == 10.5
    assert rows[0][3] == DAY
    assert json.loads(rows[0][4]) == {"coupon_code": "SPRING"}
    assert rows[0][5] is None  # optional column absent from the file reads as null


def test_rerunning_a_day_replaces_it(tmp_path, con):
    write(tmp_path, "orders", DAY, HEADER + "".join(GOOD) + BAD["status_known"])
    for _ in range(3):
        load_partition(con, "orders", DAY, tmp_path)
    assert con.execute("select count(*) from raw.orders").fetchone()[0] == 2
    assert con.execute("select count(*) from raw.orders_rejected").fetchone()[0] == 1
    # a corrected file replaces the partition, rejects included
    write(tmp_path, "orders", DAY, HEADER + GOOD[0])
    load_partition(con, "orders", DAY, tmp_path)
    assert con.execute("select count(*) from raw.orders").fetchone()[0] == 1
    assert con.execute("select count(*) from raw.orders_rejected").fetchone()[0] == 0


def test_missing_required_column_refuses_the_file_and_keeps_other_days(tmp_path, con):
    write(tmp_path, "orders", DAY, HEADER + GOOD[0])
    load_partition(con, "orders", DAY, tmp_path)
    bad_day = DAY + dt.timedelta(days=1)
    bad = write(tmp_path, "orders", bad_day, "order_id,customer_id,status\nO1,C1,placed\n")
    with pytest.raises(LandingFileError) as err:
        load_partition(con, "orders", bad_day, tmp_path)
    message = str(err.value)
    assert str(bad) in message and "ordered_at" in message and "order_total" in message
    assert con.execute("select count(*) from raw.orders").fetchone()[0] == 1


def test_missing_optional_source_gives_an_empty_table(tmp_path, con):
    assert landing_file(tmp_path, "reviews", DAY) is None
    result = load_partition(con, "reviews", DAY, tmp_path)
    assert result.read_rows == 0
    assert con.execute("select count(*) from raw.reviews").fetchone()[0] == 0


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_parquet_and_jsonl_follow_the_same_rules(tmp_path, con, fmt):
    frame = pd.DataFrame(
        {
            "review_id": ["R1", "R2", "R3"],
            "customer_id": ["C1", "C2", ""],
            "rating": [5, 7, 3],
            "created_at": ["2025-03-01T09:00:00Z"] * 3,
        }
    )
    path = tmp_path / "reviews" / f"{DAY}.{fmt}"
    path.parent.mkdir(parents=True)
    if fmt == "parquet":
        frame.to_parquet(path)
    else:
        text = frame.to_json(orient="records", lines=True) + "{not json\n"
        path.write_text(text)
    result = load_partition(con, "reviews", DAY, tmp_path)
    expected = {"rating_1_to_5": 1, "missing_customer_id": 1}
    if fmt == "jsonl":
        expected["malformed_json"] = 1
    assert result.loaded_rows == 1
    assert result.rejected_by_rule == expected


def test_two_files_for_one_day_are_refused(tmp_path):
    write(tmp_path, "orders", DAY, HEADER)
    write(tmp_path, "orders", DAY, "[]", ext="jsonl")
    with pytest.raises(LandingFileError, match="several files"):
        landing_file(tmp_path, "orders", DAY)


def test_every_source_has_a_raw_and_a_rejected_table(tmp_path, con):
    load_partition(con, "orders", DAY, tmp_path)
    tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    for name in SOURCES:
        assert {name, f"{name}_rejected"} <= tables
