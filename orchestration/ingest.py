"""Load one landing file (one source, one day) into ``raw.<source>``, with quarantine.

Pure DuckDB + Python (no dagster) so it is unit-tested directly. Parsing is DuckDB's:
``read_csv`` with ``store_rejects`` catches structural problems (wrong column count,
bad quoting, invalid UTF-8), ``read_json``/``read_parquet`` read the other formats.
Every column is read as text first and then cast with ``try_cast`` in SQL, so a bad
value rejects its row (with the rule and the row number) instead of failing the file.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from orchestration.contract import FILE_FORMATS, META_COLUMNS, REJECTED_COLUMNS, SOURCES, Source


class LandingFileError(ValueError):
    """A landing file that cannot be loaded at all (e.g. required columns missing)."""


@dataclass
class LoadResult:
    source: str
    partition_date: dt.date
    file: str | None
    read_rows: int = 0
    loaded_rows: int = 0
    rejected_rows: int = 0
    rejected_by_rule: dict[str, int] = field(default_factory=dict)
    extra_columns: list[str] = field(default_factory=list)


def q(identifier: str) -> str:
    """Quote a SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def raw_table(source: str) -> str:
    return f"raw.{q(source)}"


def rejected_table(source: str) -> str:
    return f"raw.{q(source + '_rejected')}"


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw schema and every raw/rejected table if missing (idempotent)."""
    con.execute("create schema if not exists raw")
    for s in SOURCES.values():
        cols = [f"{q(c.name)} {c.sql_type}" for c in s.columns]
        cols += [f"{q(n)} {t}" for n, t in META_COLUMNS.items()]
        con.execute(f"create table if not exists {raw_table(s.name)} ({', '.join(cols)})")
        rej = ", ".join(f"{q(n)} {t}" for n, t in REJECTED_COLUMNS.items())
        con.execute(f"create table if not exists {rejected_table(s.name)} ({rej})")


def landing_file(landing_dir: Path, source: str, day: dt.date) -> Path | None:
    """The landing file of ``source`` for ``day``; None if absent; error if ambiguous."""
    found = [
        p
        for ext in FILE_FORMATS
        if (p := landing_dir / source / f"{day.isoformat()}.{ext}").is_file()
    ]
    if len(found) > 1:
        raise LandingFileError(f"{source} {day}: several files for one day: {found}")
    return found[0] if found else None


_IS_OBJECT = "(case when json_valid(line) then json_type(line) = 'OBJECT' else false end)"


def _csv_header(path: Path) -> list[str]:
    """Column names of a CSV file (first record), to check required columns per file."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        return [c.strip() for c in next(csv.reader(fh), [])]


def _stage(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> dict[str, list[str]]:
    """Read ``paths`` (any mix of formats) as text into temp table ``_landed``
    (``_file``, ``_row_number``, one column per column name found) and their structural
    rejects into ``_structural``. Returns each file's column names."""
    for t in ("_landed", "_structural", "_csv", "_jsonl", "_parquet", "_lines"):
        con.execute(f"drop table if exists {t}")
    con.execute(
        "create temp table _structural (_file varchar, _row_number bigint, rule varchar, "
        "reason varchar, record varchar)"
    )
    by_fmt: dict[str, list[str]] = {}
    for p in paths:
        fmt = p.suffix.lstrip(".")
        if fmt not in FILE_FORMATS:
            raise LandingFileError(f"{p}: unsupported format {fmt!r} (use {FILE_FORMATS})")
        by_fmt.setdefault(fmt, []).append(str(p))
    columns: dict[str, list[str]] = {}
    parts = []
    if files := by_fmt.get("csv"):
        columns.update({f: _csv_header(Path(f)) for f in files})
        # store_rejects cannot be combined with union_by_name: read files sharing a
        # header together (usually all of them), one group after the other.
        groups: dict[tuple[str, ...], list[str]] = {}
        for f in files:
            groups.setdefault(tuple(columns[f]), []).append(f)
        for i, group in enumerate(groups.values()):
            for t in ("_rej_errors", "_rej_scans"):
                con.execute(f"drop table if exists {t}")
            # parallel=false keeps each file's rows in file order (rowid) for numbering.
            con.execute(
                f"{'insert into _csv by name' if i else 'create temp table _csv as'} "
                "select filename as _file, * exclude (filename) from read_csv($files, "
                "header = true, all_varchar = true, filename = true, store_rejects = true, "
                "rejects_table = '_rej_errors', rejects_scan = '_rej_scans', parallel = false)",
                {"files": group},
            )
            # Reader lines count the header: data row number = line - 1.
            con.execute(
                "insert into _structural select s.file_path, e.line - 1, 'malformed_' || "
                "lower(replace(cast(any_value(e.error_type) as varchar), ' ', '_')), "
                "string_agg(distinct e.error_message, '; '), any_value(e.csv_line) "
                "from _rej_errors e join _rej_scans s using (scan_id, file_id) "
                "group by s.file_path, e.line"
            )
        con.execute(
            "alter table _csv add column _row_number bigint; "
            "update _csv set _row_number = n from (select rowid as rid, "
            "row_number() over (partition by _file order by rowid) as n from _csv) r "
            "where _csv.rowid = r.rid"
        )
        # Rows refused by the reader are not in _csv: each (ascending) shifts the
        # numbers of its file's later rows by one so numbers match rows in the file.
        rejects = con.execute("select _file, _row_number from _structural order by 2").fetchall()
        for file, row in rejects:
            con.execute(
                "update _csv set _row_number = _row_number + 1 "
                "where _file = $f and _row_number >= $r",
                {"f": file, "r": row},
            )
        parts.append("_csv")
    if files := by_fmt.get("jsonl"):
        # One JSON object per line, read as lines so a malformed line is kept (with its
        # number) instead of failing the file or being skipped by the JSON reader.
        con.execute(
            "create or replace temp table _raw_lines as select filename as _file, "
            "column0 as line from read_csv($files, header = false, columns = "
            "{'column0': 'VARCHAR'}, delim = '\\x01', quote = '', escape = '', "
            "filename = true, parallel = false)",
            {"files": files},
        )
        con.execute(
            "create temp table _lines as select _file, row_number() over "
            "(partition by _file order by rowid) as _row_number, line from _raw_lines"
        )
        con.execute(
            "insert into _structural select _file, _row_number, 'malformed_json', "
            f"'line is not a JSON object', line from _lines where not {_IS_OBJECT}"
        )
        keys = con.execute(
            "select _file, list(distinct k order by k) from (select _file, "
            f"unnest(json_keys(line)) as k from _lines where {_IS_OBJECT}) group by _file"
        ).fetchall()
        columns.update({f: [] for f in files} | dict(keys))
        names = sorted({k for _, ks in keys for k in ks})
        select = "".join(f", line ->> {sql_literal(k)} as {q(k)}" for k in names)
        con.execute(
            f"create temp table _jsonl as select _file, _row_number{select} "
            f"from _lines where {_IS_OBJECT}"
        )
        parts.append("_jsonl")
    if files := by_fmt.get("parquet"):
        schema = con.execute(
            "select file_name, list(name) from parquet_schema($files) "
            "where num_children is null group by file_name",
            {"files": files},
        ).fetchall()
        columns.update(dict(schema))
        names = sorted({c for _, cs in schema for c in cs})
        casts = "".join(f", cast({q(c)} as varchar) as {q(c)}" for c in names)
        con.execute(
            f"create temp table _parquet as select filename as _file, "
            f"file_row_number + 1 as _row_number{casts} from read_parquet($files, "
            "union_by_name = true, filename = true, file_row_number = true)",
            {"files": files},
        )
        parts.append("_parquet")
    union = " union all by name ".join(f"select * from {t}" for t in parts)
    con.execute(f"create temp table _landed as {union}")
    return columns


def sql_literal(value: str) -> str:
    """A SQL string literal, for the few places (file names in COPY/ATTACH, generated
    CASE labels) where a value cannot be bound as a parameter."""
    return "'" + value.replace("'", "''") + "'"


def _typed(col: str, sql_type: str, prefix: str = "") -> str:
    """Cast a text column to its contract type; empty strings are nulls."""
    v = f"nullif(trim({prefix}{q(col)}), '')"
    if sql_type == "TIMESTAMP":  # ISO-8601; an offset is converted to UTC, none means UTC
        return f"cast(try_cast({v} as timestamptz) as timestamp)"
    return f"try_cast({v} as {sql_type})"


def _violations(source: Source, present: set[str]) -> list[tuple[str, str, str]]:
    """(rule, condition on the typed row ``t`` + text row ``l``, reason) in check order."""
    checks = []
    for c in source.columns:
        if c.name not in present:
            continue
        text = f"nullif(trim(l.{q(c.name)}), '')"
        if c.required:
            checks.append((f"missing_{c.name}", f"{text} is null", f"{c.name} is empty"))
        if c.sql_type != "VARCHAR":
            checks.append(
                (
                    f"invalid_{c.name}",
                    f"{text} is not null and t.{q(c.name)} is null",
                    f"{c.name} is not a valid {c.sql_type.lower()}",
                )
            )
    for rule in source.rules:
        cond = rule.violation_sql
        for c in source.columns:  # qualify bare column names with the typed row
            cond = _qualify(cond, c.name)
        checks.append((rule.name, f"coalesce({cond}, false)", rule.reason))
    return checks


def _qualify(sql: str, column: str) -> str:
    return re.sub(rf"(?<![\w.'\"]){re.escape(column)}(?![\w'\"])", f"t.{q(column)}", sql)


def load_partitions(
    con: duckdb.DuckDBPyConnection,
    source_name: str,
    days: list[dt.date],
    landing_dir: Path,
    loaded_at: dt.datetime | None = None,
) -> tuple[list[LoadResult], list[str]]:
    """Replace partitions ``days`` of ``raw.<source>`` (and their rejects) with the
    landing files of those days, all files in one pass.

    One transaction: readers see the old or the new partitions, never a mix, and
    re-running a day never duplicates rows. A day without a file becomes empty. A file
    missing required columns (or a day with two files) is refused: its day keeps its
    previous rows and the refusal, naming the file and the columns, is returned in the
    second element; the other days load. Returns (results of loaded days, refusals).
    """
    source = SOURCES[source_name]
    loaded_at = loaded_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute("set timezone = 'UTC'")
    ensure_raw_tables(con)
    refused: list[str] = []
    files: dict[dt.date, Path | None] = {}
    for day in days:
        try:
            files[day] = landing_file(landing_dir, source_name, day)
        except LandingFileError as exc:
            refused.append(str(exc))
    paths = [p for p in files.values() if p is not None]
    columns = _stage(con, paths) if paths else {}
    for path in paths:
        missing = [c for c in source.required_columns if c not in columns.get(str(path), [])]
        if missing:
            refused.append(
                f"{path}: required column(s) missing: {', '.join(missing)} "
                f"(source {source_name!r} requires {', '.join(source.required_columns)}); "
                "the file was not loaded"
            )
            files = {d: p for d, p in files.items() if p != path}
    day_of = [(str(p), d) for d, p in files.items() if p is not None]
    con.execute("create or replace temp table _files (_file varchar, _day date)")
    if day_of:
        con.executemany("insert into _files values (?, ?)", day_of)
    if paths:
        con.execute("delete from _landed where _file not in (select _file from _files)")
        con.execute("delete from _structural where _file not in (select _file from _files)")
        landed = [r[0] for r in con.execute("describe _landed").fetchall()]
        present = set(landed) - {"_file", "_row_number"}
        known = {c.name for c in source.columns}
        extra = sorted(present - known)
        checks = _violations(source, present)
        file_cols = sorted(present)
        con.execute(
            "create or replace temp table _checked as select l._file, l._row_number, t.*, "
            f"cast({_json_object(extra)} as varchar) as _extra, "
            f"cast({_json_object(file_cols)} as varchar) as _record, "
            f"{_case(checks, 0)} as _rule, {_case(checks, 2)} as _reason from _landed l, "
            f"lateral (select {_typed_select(source, present, 'l.')}) t"
        )
    replace = [d for d, _ in files.items()]
    con.execute("begin transaction")
    try:
        for table in (raw_table(source_name), rejected_table(source_name)):
            con.execute(
                f"delete from {table} where _partition_date in (select unnest($d))", {"d": replace}
            )
        if day_of:
            cols = ", ".join(q(c.name) for c in source.columns)
            con.execute(
                f"insert into {raw_table(source_name)} select {cols}, f._day, c._file, "
                "c._row_number, c._extra, $ts from _checked c join _files f using (_file) "
                "where c._rule is null order by f._day, c._row_number",
                {"ts": loaded_at},
            )
            con.execute(
                f"insert into {rejected_table(source_name)} select f._day, r._file, "
                "r._row_number, r.rule, r.reason, r.record, $ts from ("
                "select _file, _row_number, _rule as rule, _reason as reason, _record as record "
                "from _checked where _rule is not null union all "
                "select _file, _row_number, rule, reason, record from _structural"
                ") r join _files f using (_file) order by f._day, r._row_number",
                {"ts": loaded_at},
            )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return _results(con, source_name, files), refused


def _results(con, source_name: str, files: dict[dt.date, Path | None]) -> list[LoadResult]:
    """Per-day counts of what is now in raw and in the rejects, for the loaded days."""
    results = {d: LoadResult(source_name, d, str(p) if p else None) for d, p in files.items()}
    if not results:
        return []
    params = {"d": list(results)}
    for day, n in con.execute(
        f"select _partition_date, count(*) from {raw_table(source_name)} "
        "where _partition_date in (select unnest($d)) group by 1",
        params,
    ).fetchall():
        results[day].loaded_rows = n
    for day, rule, n in con.execute(
        f"select _partition_date, rule, count(*) from {rejected_table(source_name)} "
        "where _partition_date in (select unnest($d)) group by 1, 2 order by 2",
        params,
    ).fetchall():
        results[day].rejected_by_rule[rule] = n
    for r in results.values():
        r.rejected_rows = sum(r.rejected_by_rule.values())
        r.read_rows = r.loaded_rows + r.rejected_rows
    return [results[d] for d in sorted(results)]


def load_partition(
    con: duckdb.DuckDBPyConnection, source_name: str, day: dt.date, landing_dir: Path
) -> LoadResult:
    """Load one day; raises :class:`LandingFileError` if its file is refused."""
    results, refused = load_partitions(con, source_name, [day], landing_dir)
    if refused:
        raise LandingFileError("; ".join(refused))
    return results[0]


def _case(checks: list[tuple[str, str, str]], field: int) -> str:
    """A CASE picking the first violated check's rule (field 0) or reason (field 2)."""
    if not checks:
        return "cast(null as varchar)"
    return "case " + " ".join(f"when {c[1]} then {sql_literal(c[field])}" for c in checks) + " end"


def _json_object(columns: list[str]) -> str:
    if not columns:
        return "cast(null as json)"
    return "json_object(" + ", ".join(f"{sql_literal(c)}, l.{q(c)}" for c in columns) + ")"


def _typed_select(source: Source, present: set[str], prefix: str = "") -> str:
    return ", ".join(
        f"{_typed(c.name, c.sql_type, prefix)} as {q(c.name)}"
        if c.name in present
        else f"cast(null as {c.sql_type}) as {q(c.name)}"
        for c in source.columns
    )
