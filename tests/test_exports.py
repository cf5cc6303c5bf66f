"""Nightly segment exports on real DuckDB files: atomic folders, entered/left changes
across exports, no PII, salted e-mail hashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from orchestration.exports import FILES, export_segments

SEGMENTS = ["service_recovery", "vip_nurture", "win_back", "cart_recovery", "nurture", "prospect"]
DAY1 = dt.date(2026, 3, 1)
DAY2 = dt.date(2026, 3, 2)
PII_NAMES = ("email", "title", "body", "comment", "name")


def random_segments(rng: np.random.Generator, ids: list[str]) -> dict[str, str]:
    return {
        c: SEGMENTS[i] for c, i in zip(ids, rng.integers(0, len(SEGMENTS), len(ids)), strict=True)
    }


def make_warehouse(path: Path, as_of: dt.date, segments: dict[str, str]) -> dict[str, str]:
    """A warehouse with ``marts.customer_segments`` (plus a stray free-text ``comment``
    column that must never be exported) and ``raw.customers`` holding two versions of
    each e-mail (the newer one, mixed case with blanks, counts). Returns the e-mails."""
    emails = {c: f"  {c.title()}.Person@Example.COM " for c in segments}
    rows = [
        (c, as_of, "active", s, f"act_{s}", f"rule_{s}", i / len(segments), 10.0 * i, "high", None)
        for i, (c, s) in enumerate(sorted(segments.items()))
    ]
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists marts; create schema if not exists raw")
        con.execute(
            "create or replace table marts.customer_segments (customer_id varchar, "
            "as_of_date date, lifecycle_stage varchar, segment varchar, recommended_action "
            "varchar, reasons varchar, churn_probability double, clv double, value_tier "
            "varchar, nps_category varchar, comment varchar default 'secret text')"
        )
        con.register("seg", pd.DataFrame(rows))
        con.execute("insert into marts.customer_segments select *, 'secret text' from seg")
        con.execute(
            "create or replace table raw.customers (customer_id varchar, email varchar, "
            "_partition_date date, _row_number bigint)"
        )
        old = [(c, f"old-{c}@example.com", as_of - dt.timedelta(days=9), 1) for c in emails]
        new = [(c, e, as_of - dt.timedelta(days=1), 1) for c, e in emails.items()]
        con.register("cust", pd.DataFrame(old + new))
        con.execute("insert into raw.customers select * from cust")
    return emails


def export(path: Path, root: Path, salt: str | None = None):
    with duckdb.connect(str(path), read_only=True) as con:
        return export_segments(con, root, salt=salt)


def read(file: Path) -> list[dict]:
    reader = "read_parquet" if file.suffix == ".parquet" else "read_csv"
    with duckdb.connect() as con:
        rel = con.execute(f"select * from {reader}('{file}') order by all")
        cols = [d[0] for d in rel.description]
        return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def changes_of(folder: Path) -> set[tuple[str, str, str]]:
    return {(r["customer_id"], r["change"], r["segment"]) for r in read(folder / "changes.parquet")}


def test_export_is_complete_atomic_and_matches_the_manifest(tmp_path):
    wh, root = tmp_path / "w.duckdb", tmp_path / "exports"
    ids = [f"C{i:04d}" for i in range(300)]
    segments = random_segments(np.random.default_rng(1), ids)
    make_warehouse(wh, DAY1, segments)
    result = export(wh, root)

    assert sorted(p.name for p in root.iterdir()) == ["2026-03-01", "LATEST"]
    assert (root / "LATEST").read_text().strip() == "2026-03-01"
    assert sorted(p.name for p in result.folder.iterdir()) == sorted([*FILES, "manifest.json"])
    manifest = json.loads((result.folder / "manifest.json").read_text())
    assert manifest["as_of_date"] == "2026-03-01" and manifest["previous_as_of_date"] is None
    for name in FILES:
        data = (result.folder / name).read_bytes()
        assert manifest["files"][name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert manifest["files"][name]["rows"] == len(read(result.folder / name))
    exported = read(result.folder / "segments.parquet")
    assert {r["customer_id"]: r["segment"] for r in exported} == segments
    assert read(result.folder / "segments.csv") == exported
    # First export: every customer entered their segment.
    assert changes_of(result.folder) == {(c, "entered", s) for c, s in segments.items()}


def test_changes_entered_and_left_across_exports_and_re_export_replaces(tmp_path):
    wh, root = tmp_path / "w.duckdb", tmp_path / "exports"
    rng = np.random.default_rng(2)
    ids = [f"C{i:04d}" for i in range(400)]
    day1 = random_segments(rng, ids[:350])
    make_warehouse(wh, DAY1, day1)
    export(wh, root)
    day2 = {**random_segments(rng, ids[50:]), **{c: day1[c] for c in ids[50:200]}}
    make_warehouse(wh, DAY2, day2)
    result = export(wh, root)

    expected = set()
    for c in set(day1) | set(day2):
        if day1.get(c) != day2.get(c):
            expected |= {(c, "left", day1[c])} if c in day1 else set()
            expected |= {(c, "entered", day2[c])} if c in day2 else set()
    assert changes_of(result.folder) == expected
    assert result.entered == sum(1 for e in expected if e[1] == "entered")
    assert result.left == sum(1 for e in expected if e[1] == "left")
    assert result.previous_as_of_date == DAY1
    moved = next(c for c in ids[200:350] if day1[c] != day2[c])
    row = next(r for r in read(result.folder / "changes.csv") if r["customer_id"] == moved)
    assert (row["previous_segment"], row["current_segment"]) == (day1[moved], day2[moved])

    # Re-exporting the same date replaces the folder and still compares with DAY1.
    day2b = {**day2, ids[60]: "vip_nurture" if day2[ids[60]] != "vip_nurture" else "nurture"}
    make_warehouse(wh, DAY2, day2b)
    again = export(wh, root)
    assert again.folder == result.folder and again.previous_as_of_date == DAY1
    exported = {r["customer_id"]: r["segment"] for r in read(again.folder / "segments.parquet")}
    assert exported == day2b
    assert sorted(p.name for p in root.iterdir()) == ["2026-03-01", "2026-03-02", "LATEST"]
    assert (root / "LATEST").read_text().strip() == "2026-03-02"


def test_no_pii_and_email_hash_only_with_a_salt(tmp_path):
    wh, root = tmp_path / "w.duckdb", tmp_path / "exports"
    ids = [f"C{i:04d}" for i in range(120)]
    emails = make_warehouse(wh, DAY1, random_segments(np.random.default_rng(3), ids))
    salt = "pepper-" + tmp_path.name

    for use_salt in (None, salt):
        folder = export(wh, root, salt=use_salt).folder
        for name in FILES:
            rows = read(folder / name)
            cols = set(rows[0])
            assert not any(p in c for c in cols for p in PII_NAMES if c != "email_hash")
            assert ("email_hash" in cols) == (use_salt is not None)
            text = (folder / name).read_bytes() if name.endswith("csv") else str(rows).encode()
            assert b"secret text" not in text and b"@example" not in text.lower()
            if use_salt:
                for r in rows:
                    email = emails[r["customer_id"]].strip().lower()
                    assert r["email_hash"] == hashlib.sha256((salt + email).encode()).hexdigest()
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["email_hash"]["included"] == (use_salt is not None)


def test_failed_export_leaves_no_partial_folder(tmp_path):
    wh, root = tmp_path / "w.duckdb", tmp_path / "exports"
    ids = [f"C{i:04d}" for i in range(50)]
    make_warehouse(wh, DAY1, random_segments(np.random.default_rng(4), ids))
    first = export(wh, root)
    (first.folder / "segments.parquet").write_bytes(b"not a parquet file")
    make_warehouse(wh, DAY2, random_segments(np.random.default_rng(5), ids))
    with pytest.raises(duckdb.Error):
        export(wh, root)
    assert sorted(p.name for p in root.iterdir()) == ["2026-03-01", "LATEST"]
    assert (root / "LATEST").read_text().strip() == "2026-03-01"
