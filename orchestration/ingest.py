"""Load one landing file (one source, one day) into ``raw.<source>``, with quarantine.

Pure DuckDB + Python (no dagster) so it is unit-tested directly. Parsing is DuckDB's:
``read_csv`` with ``store_rejects`` catches structural problems (wrong column count,
bad quoting, invalid UTF-8), ``read_json``/``read_parquet`` read the other formats.
Every column is read as text first and then cast with ``try_cast`` in SQL, so a bad
value rejects its row (with the rule and the row number) instead of failing the file.
"""

from __future__ import annotations

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


def _stage(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """Read ``path`` as text into temp table ``_landed`` (+ ``_row_number``) and its
    structural rejects into ``_structural``. Returns the file's column names."""
    con.execute("drop table if exists _landed; drop table if exists _structural")
    con.execute(
        f"create temp table _structural ({q('_row_number')} bigint, rule varchar, "
        "reason varchar, record varchar)"
    )
    fmt = path.suffix.lstrip(".")
    if fmt == "csv":
        con.execute("drop table if exists _rej_errors; drop table if exists _rej_scans")
        con.execute(
            "create temp table _landed as select row_number() over () as _row_number, * "
            "from read_csv($path, header = true, all_varchar = true, store_rejects = true, "
            "rejects_table = '_rej_errors', rejects_scan = '_rej_scans', "
            "parallel = false, null_padding = false)",
            {"path": str(path)},
        )
        # Reader lines count the header: data row number = line - 1.
        con.execute(
            "insert into _structural select line - 1, "
            "'malformed_' || lower(replace(cast(any_value(error_type) as varchar), ' ', '_')), "
            "string_agg(distinct error_message, '; '), any_value(csv_line) "
            "from _rej_errors group by line"
        )
        # Number parsed records by their row in the file: each rejected row (ascending)
        # shifts the records at or after it by one.
        for (row,) in con.execute("select _row_number from _structural order by 1").fetchall():
            con.execute(
                "update _landed set _row_number = _row_number + 1 where _row_number >= $r",
                {"r": row},
            )
    elif fmt == "jsonl":
        # One JSON object per line: read lines verbatim so a malformed line is kept
        # (with its number) instead of failing or being skipped by the JSON reader.
        con.execute(
            "create temp table _lines as select row_number() over () as _row_number, "
            "column0 as line from read_csv($path, header = false, columns = {'column0': "
            "'VARCHAR'}, delim = '\\x01', quote = '', escape = '', parallel = false)",
            {"path": str(path)},
        )
        con.execute(
            "insert into _structural select _row_number, 'malformed_json', "
            "'line is not a JSON object', line from _lines "
            f"where not {_IS_OBJECT}"
        )
        keys = [
            r[0]
            for r in con.execute(
                f"select distinct unnest(json_keys(line)) from _lines where {_IS_OBJECT} order by 1"
            ).fetchall()
        ]
        select = ", ".join(f"line ->> {_lit(k)} as {q(k)}" for k in keys)
        con.execute(
            f"create temp table _landed as select _row_number{', ' + select if select else ''} "
            f"from _lines where {_IS_OBJECT}"
        )
        con.execute("drop table _lines")
    elif fmt == "parquet":
        cols = [
            r[0]
            for r in con.execute(
                "select name from parquet_schema($path) where name <> 'schema' "
                "and num_children is null",
                {"path": str(path)},
            ).fetchall()
        ]
        casts = ", ".join(f"cast({q(c)} as varchar) as {q(c)}" for c in cols)
        con.execute(
            f"create temp table _landed as select file_row_number + 1 as _row_number, {casts} "
            "from read_parquet($path, file_row_number = true)",
            {"path": str(path)},
        )
    else:
        raise LandingFileError(f"{path}: unsupported format {fmt!r} (use {FILE_FORMATS})")
    return [r[0] for r in con.execute("describe _landed").fetchall() if r[0] != "_row_number"]


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _typed(col: str, sql_type: str) -> str:
    """Cast a text column to its contract type; empty strings are nulls."""
    v = f"nullif(trim({q(col)}), '')"
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


def load_partition(
    con: duckdb.DuckDBPyConnection,
    source_name: str,
    day: dt.date,
    path: Path | None,
    loaded_at: dt.datetime | None = None,
) -> LoadResult:
    """Replace partition ``day`` of ``raw.<source>`` (and its rejects) with ``path``.

    The replacement is one transaction: readers see the old or the new partition,
    never a mix, and re-running a day never duplicates rows. ``path=None`` (no file
    landed that day) empties the partition. Raises :class:`LandingFileError` naming
    the file and the missing columns when required columns are absent.
    """
    source = SOURCES[source_name]
    loaded_at = loaded_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    result = LoadResult(source_name, day, str(path) if path else None)
    con.execute("set timezone = 'UTC'")
    ensure_raw_tables(con)
    if path is not None:
        file_cols = _stage(con, path)
        missing = [c for c in source.required_columns if c not in file_cols]
        if missing:
            raise LandingFileError(
                f"{path}: required column(s) missing: {', '.join(missing)} "
                f"(source {source_name!r} requires {', '.join(source.required_columns)}); "
                "the file was not loaded"
            )
        present = set(file_cols)
        known = {c.name for c in source.columns}
        result.extra_columns = [c for c in file_cols if c not in known]
        checks = _violations(source, present)
        rule_expr = _case(checks, 0)
        reason_expr = _case(checks, 2)
        extra = _json_object(result.extra_columns)
        con.execute(
            "create or replace temp table _checked as select l._row_number, "
            f"{_typed_select(source, present)}, cast({extra} as varchar) as _extra, "
            f"cast({_json_object(file_cols)} as varchar) as _record from _landed l"
        )
        con.execute(
            f"create or replace temp table _verdict as select t._row_number, {rule_expr} as _rule, "
            f"{reason_expr} as _reason from _checked t join _landed l using (_row_number)"
        )
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {raw_table(source_name)} where _partition_date = $d", {"d": day})
        con.execute(
            f"delete from {rejected_table(source_name)} where _partition_date = $d", {"d": day}
        )
        if path is not None:
            cols = ", ".join(q(c.name) for c in source.columns)
            params = {"d": day, "f": str(path), "ts": loaded_at}
            con.execute(
                f"insert into {raw_table(source_name)} select {cols}, $d, $f, t._row_number, "
                "t._extra, $ts from _checked t join _verdict v using (_row_number) "
                "where v._rule is null order by t._row_number",
                params,
            )
            con.execute(
                f"insert into {rejected_table(source_name)} "
                "select $d, $f, _row_number, rule, reason, record, $ts from ("
                "select t._row_number, v._rule as rule, v._reason as reason, t._record as record "
                "from _checked t join _verdict v using (_row_number) where v._rule is not null "
                "union all select _row_number, rule, reason, record from _structural"
                ") order by _row_number",
                params,
            )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    if path is not None:
        counts = con.execute(
            f"select rule, count(*) from {rejected_table(source_name)} "
            "where _partition_date = $d group by rule order by rule",
            {"d": day},
        ).fetchall()
        result.rejected_by_rule = {r: n for r, n in counts}
        result.rejected_rows = sum(result.rejected_by_rule.values())
        result.loaded_rows = con.execute(
            f"select count(*) from {raw_table(source_name)} where _partition_date = $d",
            {"d": day},
        ).fetchone()[0]
        result.read_rows = result.loaded_rows + result.rejected_rows
        con.execute("drop table if exists _landed; drop table if exists _checked")
        con.execute("drop table if exists _verdict; drop table if exists _structural")
    return result


def _case(checks: list[tuple[str, str, str]], field: int) -> str:
    """A CASE picking the first violated check's rule (field 0) or reason (field 2)."""
    if not checks:
        return "cast(null as varchar)"
    return "case " + " ".join(f"when {c[1]} then {_lit(c[field])}" for c in checks) + " end"


def _json_object(columns: list[str]) -> str:
    if not columns:
        return "cast(null as json)"
    return "json_object(" + ", ".join(f"{_lit(c)}, l.{q(c)}" for c in columns) + ")"


def _typed_select(source: Source, present: set[str]) -> str:
    return ", ".join(
        f"{_typed(c.name, c.sql_type)} as {q(c.name)}"
        if c.name in present
        else f"cast(null as {c.sql_type}) as {q(c.name)}"
        for c in source.columns
    )
