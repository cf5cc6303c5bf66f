"""Retention of the score history (pure Python + DuckDB; no dagster import).

Every night appends one row per customer to ``ml.churn_scores`` and ``ml.clv_predictions``.
The policy keeps

- every as-of date of the last ``keep_days`` days (``newest - date < keep_days``), and
- beyond that, the first as-of date present in each calendar month (monthly snapshots);

``keep_days = 0`` keeps everything. Dates after ``newest`` and ``protected`` dates are never
dropped. For ``ml.churn_scores`` the dates without a row in ``ml.churn_backtest`` are
protected: a score date is pruned only after its backtest is stored (the backtest runs in the
same step, before the pruning). Given the churn horizon, that protection ends ``keep_days``
days after the date matured: a date the backtest never evaluates (no rows) is kept that long
for a look, then pruned like any other, so the table stays bounded.

The policy is idempotent: the first date of a month is never dropped, so it stays the first.
:func:`dates_to_prune` is the pure policy; :func:`prune_score_history` applies it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import duckdb

SCORE_HISTORY_TABLES = ("churn_scores", "clv_predictions")
BACKTESTED_TABLE = "churn_scores"  # its dates are kept until ml.churn_backtest has them


def dates_to_prune(
    dates: Iterable[dt.date],
    newest: dt.date,
    keep_days: int,
    protected: Iterable[dt.date] = (),
) -> list[dt.date]:
    """The as-of dates the retention policy drops.

    Parameters
    ----------
    dates : the as-of dates present (duplicates allowed).
    newest : tonight's as-of date; the window is ``(newest - keep_days, newest]``.
    keep_days : days of full daily history (``0``: drop nothing).
    protected : dates never dropped (e.g. churn score dates not yet backtested).

    Returns
    -------
    list of datetime.date
        Sorted ascending: the dates older than the window that are not the first date of
        their calendar month among ``dates`` and not protected.
    """
    if keep_days < 0:
        raise ValueError(f"keep_days must be >= 0, got {keep_days}")
    present = sorted(set(dates))
    if keep_days == 0 or not present:
        return []
    first_of_month: dict[tuple[int, int], dt.date] = {}
    for d in present:  # ascending: the first seen is the month's first
        first_of_month.setdefault((d.year, d.month), d)
    keep = set(first_of_month.values()) | set(protected)
    oldest_kept = newest - dt.timedelta(days=keep_days - 1)
    return [d for d in present if d < oldest_kept and d not in keep]


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune_score_history` removed from one table."""

    table: str
    dates: list[dt.date] = field(default_factory=list)
    rows: int = 0
    dates_kept: int = 0


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    found = con.execute(
        "select count(*) from duckdb_tables() where database_name = current_database() "
        "and schema_name = $s and table_name = $t",
        {"s": schema, "t": table},
    ).fetchone()[0]
    return found > 0


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def backtested_dates(con: duckdb.DuckDBPyConnection, schema: str = "ml") -> set[dt.date]:
    """As-of dates with a row in ``<schema>.churn_backtest`` (none if it does not exist)."""
    if not _exists(con, schema, "churn_backtest"):
        return set()
    sql = f"select distinct as_of_date from {_quote(schema)}.{_quote('churn_backtest')}"
    return {r[0] for r in con.execute(sql).fetchall()}


def prune_score_history(
    con: duckdb.DuckDBPyConnection,
    table: str,
    newest: dt.date,
    keep_days: int,
    schema: str = "ml",
    horizon_days: int | None = None,
) -> Pruned:
    """Delete the as-of dates of ``<schema>.<table>`` that :func:`dates_to_prune` drops.

    Parameters
    ----------
    con : a read-write connection to the warehouse.
    table : ``churn_scores`` or ``clv_predictions`` (any table with an ``as_of_date``).
    newest : tonight's as-of date.
    keep_days : ``LIFECYCLE_SCORE_HISTORY_DAYS`` (``0``: nothing is deleted).
    schema : the schema of ``table``.
    horizon_days : the churn horizon. A ``churn_scores`` date without a backtest is kept
        until ``keep_days`` days after it matured (``newest - date >= horizon_days +
        keep_days``); None: until it has a backtest.

    Returns
    -------
    Pruned
        The dates and the number of rows deleted (one statement, so atomic), and the number
        of as-of dates left in the table.
    """
    target = f"{_quote(schema)}.{_quote(table)}"
    present = [r[0] for r in con.execute(f"select distinct as_of_date from {target}").fetchall()]
    protected: set[dt.date] = set()
    if table == BACKTESTED_TABLE:
        protected = set(present) - backtested_dates(con, schema)
        if horizon_days is not None:
            grace_ends = newest - dt.timedelta(days=horizon_days + keep_days)
            protected = {d for d in protected if d > grace_ends}
    drop = dates_to_prune(present, newest, keep_days, protected)
    rows = 0
    if drop:
        rows = con.execute(
            f"delete from {target} where as_of_date in (select unnest($d))", {"d": drop}
        ).fetchone()[0]
    return Pruned(table=table, dates=drop, rows=int(rows), dates_kept=len(set(present)) - len(drop))
