"""Nightly exports of the segments for the CRM (pure Python + DuckDB; no dagster import).

``<export_dir>/<as_of_date>/`` holds ``segments.{parquet,csv}`` (tonight's segment per
customer), ``changes.{parquet,csv}`` (who entered or left a segment since the previous
export) and ``manifest.json`` (row counts and sha256 of each file). A folder is written
under a temporary name inside ``export_dir`` and renamed into place, so a reader never
sees a half-written export; ``<export_dir>/LATEST`` then names the newest date.

Privacy: no raw e-mail, name or free text is exported. ``email_hash`` =
``sha256(salt || lower(trim(email)))`` (hex) is added only when ``LIFECYCLE_EXPORT_SALT``
is set; without a salt there is no e-mail column at all (an unsalted hash of an e-mail
address is trivially reversible with a list of addresses).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from orchestration.ingest import sql_literal
from orchestration.publish import fsync_dir
from orchestration.settings import resolve_path

SEGMENTS_TABLE = "marts.customer_segments"
FILES = ("segments.parquet", "segments.csv", "changes.parquet", "changes.csv")
# Never exported whatever the source table holds (defence in depth; the dbt contract of
# customer_segments has none of them).
PII_COLUMN = re.compile(
    r"(^|_)(e?mail|email_address|name|title|body|comment|text|phone|address|ip)(_|$)",
    re.IGNORECASE,
)
HASH_SCHEME = "sha256(salt || lower(trim(email))), lowercase hex"
STALE_TEMP_S = 3600.0


def export_dir() -> Path:
    """``LIFECYCLE_EXPORT_DIR`` (default ``data/exports``, relative to the project root)."""
    return resolve_path("LIFECYCLE_EXPORT_DIR", "data/exports")


def export_salt() -> str | None:
    """``LIFECYCLE_EXPORT_SALT``, the secret salting ``email_hash``; None when unset."""
    return os.environ.get("LIFECYCLE_EXPORT_SALT") or None


def email_hash(email: str, salt: str) -> str:
    """Reference implementation of the exported ``email_hash`` (for the CRM's matching)."""
    return hashlib.sha256((salt + email.strip().lower()).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_segments` wrote."""

    folder: Path
    as_of_date: dt.date
    previous_as_of_date: dt.date | None
    rows: dict[str, int] = field(default_factory=dict)
    entered: int = 0
    left: int = 0
    email_hash: bool = False
    seconds: float = 0.0


def export_dates(root: Path) -> list[dt.date]:
    """Dates of the complete exports under ``root`` (folders with a manifest), ascending."""
    dates = []
    if root.is_dir():
        for d in root.iterdir():
            try:
                day = dt.date.fromisoformat(d.name)
            except ValueError:
                continue
            if (d / "manifest.json").is_file():
                dates.append(day)
    return sorted(dates)


def previous_export(root: Path, as_of: dt.date) -> dt.date | None:
    """The newest complete export strictly before ``as_of`` (re-exports stay idempotent)."""
    earlier = [d for d in export_dates(root) if d < as_of]
    return earlier[-1] if earlier else None


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    sql = "select count(*) from duckdb_tables() where schema_name = $s and table_name = $t"
    return con.execute(sql, {"s": schema, "t": table}).fetchone()[0] > 0


def _stage_segments(con: duckdb.DuckDBPyConnection, as_of: dt.date, salt: str | None) -> None:
    """Temp tables ``_x_segments`` (tonight) and ``_x_emails`` (hash per customer)."""
    cols = [
        r[0]
        for r in con.execute(f"select * from {SEGMENTS_TABLE} limit 0").description
        if not PII_COLUMN.search(r[0])
    ]
    if salt and _has_table(con, "raw", "customers"):
        con.execute(
            "create or replace temp table _x_emails as select customer_id, "
            "sha256($salt || lower(trim(email))) as email_hash from raw.customers "
            "where email is not null qualify row_number() over (partition by customer_id "
            "order by _partition_date desc, _row_number desc) = 1",
            {"salt": salt},
        )
    else:
        con.execute(
            "create or replace temp table _x_emails (customer_id varchar, email_hash varchar)"
        )
    hash_col = ", e.email_hash" if salt else ""
    select = ", ".join(f's."{c}"' for c in cols)
    con.execute(
        f"create or replace temp table _x_segments as select {select}{hash_col} "
        f"from {SEGMENTS_TABLE} s left join _x_emails e using (customer_id) "
        "where s.as_of_date = $d order by s.customer_id",
        {"d": as_of},
    )


def _stage_changes(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    prev: dt.date | None,
    prev_file: Path | None,
    hashed: bool,
) -> None:
    """Temp table ``_x_changes``: one ``entered`` row per customer whose segment differs
    from the previous export (or who is new), one ``left`` row per customer whose previous
    segment is no longer theirs (moved, or no longer in tonight's segments)."""
    if prev_file is None:
        con.execute("create or replace temp table _x_prev (customer_id varchar, segment varchar)")
    else:
        con.execute(
            "create or replace temp table _x_prev as select customer_id, segment "
            f"from read_parquet({sql_literal(str(prev_file))})"
        )
    common = (
        "cur.recommended_action, cur.lifecycle_stage, cur.value_tier, cur.clv, "
        "cur.churn_probability"
    )
    con.execute(
        "create or replace temp table _x_changes as "
        "select customer_id, cast($d as date) as as_of_date, "
        "cast($p as date) as previous_as_of_date, change, segment, "
        f"previous_segment, current_segment, {common}{', e.email_hash' if hashed else ''} from ("
        "  select cur.customer_id, 'entered' as change, cur.segment, "
        "    prev.segment as previous_segment, cur.segment as current_segment, "
        f"    {common} from _x_segments cur left join _x_prev prev using (customer_id) "
        "  where prev.segment is distinct from cur.segment "
        "  union all by name "
        "  select prev.customer_id, 'left' as change, prev.segment, "
        "    prev.segment as previous_segment, cur.segment as current_segment, "
        f"    {common} from _x_prev prev left join _x_segments cur using (customer_id) "
        "  where cur.segment is distinct from prev.segment"
        ") cur left join _x_emails e using (customer_id) "
        "order by customer_id, change desc",
        {"d": as_of, "p": prev},
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_files(con: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, int]:
    """``COPY`` each temp table to Parquet and CSV in ``folder``; rows per file."""
    rows = {}
    for name in FILES:
        stem, ext = name.split(".")
        fmt = "format parquet, compression zstd" if ext == "parquet" else "format csv, header"
        target = sql_literal(str(folder / name))
        rows[name] = con.execute(f"copy _x_{stem} to {target} ({fmt})").fetchone()[0]
    return rows


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing ``final`` is renamed away first and deleted
    after, so ``final`` is always either absent, the old or the new complete folder."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
    os.rename(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_latest(root: Path, as_of: dt.date) -> None:
    """``LATEST`` names the newest export (never moved back by a backfill of an old day)."""
    latest = root / "LATEST"
    if latest.is_file() and latest.read_text().strip() > as_of.isoformat():
        return
    tmp = root / f".LATEST-{uuid.uuid4().hex[:8]}"
    tmp.write_text(as_of.isoformat() + "\n")
    os.replace(tmp, latest)


def _remove_stale_temps(root: Path) -> None:
    """Leftovers of a crashed export (``.tmp-*``, ``.old-*``) older than an hour."""
    cutoff = time.time() - STALE_TEMP_S
    for d in [*root.glob(".tmp-*"), *root.glob(".old-*")]:
        if d.is_dir() and d.stat().st_mtime < cutoff:
            shutil.rmtree(d, ignore_errors=True)


def export_segments(
    con: duckdb.DuckDBPyConnection, root: Path, salt: str | None = None
) -> ExportResult:
    """Export ``marts.customer_segments`` (its as-of date) and the changes since the
    previous export to ``root/<as_of_date>/``, atomically.

    Parameters
    ----------
    con : connection to the warehouse (read-only is enough).
    root : the exports folder (created if missing).
    salt : secret for ``email_hash``; None exports no e-mail column.
    """
    started = time.perf_counter()
    dates = con.execute(f"select distinct as_of_date from {SEGMENTS_TABLE}").fetchall()
    if len(dates) != 1:
        raise ValueError(f"{SEGMENTS_TABLE} must hold exactly one as_of_date, has {len(dates)}")
    as_of = dates[0][0]
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(root)
    prev = previous_export(root, as_of)
    tmp = root / f".tmp-{as_of}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _stage_segments(con, as_of, salt)
        prev_file = root / str(prev) / "segments.parquet" if prev else None
        _stage_changes(con, as_of, prev, prev_file, hashed=bool(salt))
        rows = _write_files(con, tmp)
        counts = con.execute(
            "select count(*) filter (change = 'entered'), count(*) filter (change = 'left') "
            "from _x_changes"
        ).fetchone()
        manifest = {
            "as_of_date": as_of.isoformat(),
            "previous_as_of_date": prev.isoformat() if prev else None,
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "source": SEGMENTS_TABLE,
            "email_hash": {"included": bool(salt), "scheme": HASH_SCHEME if salt else None},
            "changes": {"entered": counts[0], "left": counts[1]},
            "files": {
                n: {"rows": rows[n], "bytes": (tmp / n).stat().st_size, "sha256": _sha256(tmp / n)}
                for n in FILES
            },
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        for f in tmp.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        final = root / as_of.isoformat()
        _swap_into_place(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for t in ("_x_segments", "_x_changes", "_x_prev", "_x_emails"):
            con.execute(f"drop table if exists {t}")
    _write_latest(root, as_of)
    return ExportResult(
        folder=final,
        as_of_date=as_of,
        previous_as_of_date=prev,
        rows=rows,
        entered=counts[0],
        left=counts[1],
        email_hash=bool(salt),
        seconds=time.perf_counter() - started,
    )
