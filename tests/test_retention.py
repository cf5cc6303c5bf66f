"""Retention of the score history: the pure policy, the setting, and its application to a
real DuckDB file (orchestration/retention.py)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from orchestration.retention import Pruned, dates_to_prune, prune_score_history
from orchestration.settings import load_settings
from orchestration.warehouse import ML_TABLES, ensure_ml_tables

START = dt.date(2024, 1, 15)


def days(start: dt.date, n: int) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


def check_policy(present: list[dt.date], newest: dt.date, keep_days: int, dropped) -> None:
    """Every dropped date is outside the window and not its month's first; every kept date
    is inside the window or its month's first present date."""
    window_start = newest - dt.timedelta(days=keep_days - 1)
    firsts = {}
    for d in sorted(present):
        firsts.setdefault((d.year, d.month), d)
    for d in present:
        is_first = firsts[(d.year, d.month)] == d
        assert (d in dropped) == (d < window_start and not is_first), d


def test_daily_window_then_the_first_date_of_each_month():
    present = days(START, 400)
    newest = present[-1]
    dropped = dates_to_prune(present, newest, 120)
    check_policy(present, newest, 120, set(dropped))
    kept = sorted(set(present) - set(dropped))
    assert kept[-120:] == present[-120:]  # the last 120 days, every one of them
    # before the window one date per month, the first present (2024-01-15 for January)
    older = kept[:-120]
    assert older[0] == START
    assert len({(d.year, d.month) for d in older}) == len(older)
    assert all(d.day == 1 for d in older[1:])
    assert dropped == sorted(dropped)


def test_gaps_zero_protected_and_future_dates():
    # nights without a run: the first date present in a month is the monthly snapshot
    present = [dt.date(2024, 3, 9), dt.date(2024, 3, 20), dt.date(2024, 4, 2), *days(START, 1)]
    newest = dt.date(2024, 9, 1)
    assert dates_to_prune(present, newest, 30) == [dt.date(2024, 3, 20)]
    assert dates_to_prune(present, newest, 30, protected=[dt.date(2024, 3, 20)]) == []
    assert dates_to_prune(present, newest, 0) == []  # 0 keeps everything
    assert dates_to_prune([], newest, 30) == []
    # a date after tonight's (a clock or backfill oddity) is never dropped
    later = [*days(dt.date(2024, 9, 2), 3), dt.date(2024, 8, 1)]
    assert dates_to_prune(later, newest, 1) == []
    with pytest.raises(ValueError, match="keep_days"):
        dates_to_prune(present, newest, -1)


def test_nightly_application_is_idempotent_and_bounded():
    """Night after night (a date added, then pruned) the history holds exactly what the
    policy keeps over all dates ever scored, and stays bounded."""
    history: set[dt.date] = set()
    every = days(START, 730)
    for night in every:
        history.add(night)
        history -= set(dates_to_prune(history, night, 120))
        assert dates_to_prune(history, night, 120) == []  # nothing more to drop
    assert history == set(every) - set(dates_to_prune(every, every[-1], 120))
    months = {(d.year, d.month) for d in every}
    assert len(history) <= 120 + len(months)


def test_setting_defaults_zero_and_bad_values(monkeypatch):
    monkeypatch.delenv("LIFECYCLE_SCORE_HISTORY_DAYS", raising=False)
    monkeypatch.delenv("LIFECYCLE_PUBLISHED_SCORE_DAYS", raising=False)
    settings = load_settings()
    assert (settings.score_history_days, settings.published_score_days) == (120, 7)
    assert settings.score_history_days > settings.churn_horizon_days
    monkeypatch.setenv("LIFECYCLE_SCORE_HISTORY_DAYS", "0")
    monkeypatch.setenv("LIFECYCLE_PUBLISHED_SCORE_DAYS", "0")
    assert (load_settings().score_history_days, load_settings().published_score_days) == (0, 0)
    for var in ("LIFECYCLE_SCORE_HISTORY_DAYS", "LIFECYCLE_PUBLISHED_SCORE_DAYS"):
        for bad in ("ten", "-5", "1.5"):
            monkeypatch.setenv(var, bad)
            with pytest.raises(ValueError, match=var):
                load_settings()
            monkeypatch.setenv(var, "7")


def score_frame(table: str, dates: list[dt.date], customers: int) -> pd.DataFrame:
    ids = [f"C{i}" for i in range(customers)]
    frame = pd.DataFrame(
        [(c, d) for d in dates for c in ids], columns=["customer_id", "as_of_date"]
    ).assign(churn_probability=0.3, model_version="v1", scored_at=pd.Timestamp("2025-01-01"))
    for col in ML_TABLES[table]:
        if col not in frame:
            frame[col] = 1.0 if ML_TABLES[table][col] == "DOUBLE" else None
    return frame[list(ML_TABLES[table])]


def score_db(path, present: list[dt.date], customers: int, backtested: list[dt.date]) -> None:
    """A warehouse with both score tables over ``present`` and backtests of ``backtested``."""
    with duckdb.connect(str(path)) as con:
        ensure_ml_tables(con)
        for table in ("churn_scores", "clv_predictions"):
            con.register("f", score_frame(table, present, customers))
            con.execute(f'insert into ml."{table}" select * from f')
        con.execute(
            "insert into ml.churn_backtest (as_of_date, model_version) select unnest($d), 'v1'",
            {"d": backtested},
        )


# two matured dates without a backtest row (one the backtest could not evaluate)
MISSING = {dt.date(2024, 2, 20), dt.date(2024, 5, 17)}


def test_prune_on_a_real_duckdb_file(tmp_path):
    customers, present = 25, days(START, 300)
    newest = present[-1]
    matured = newest - dt.timedelta(days=90)
    missing = MISSING
    backtested = [d for d in present if d <= matured and d not in missing]
    path = tmp_path / "lifecycle.duckdb"
    score_db(path, present, customers, backtested)
    with duckdb.connect(str(path)) as con:
        churn = prune_score_history(con, "churn_scores", newest, 120)
        clv = prune_score_history(con, "clv_predictions", newest, 120)
        again = prune_score_history(con, "churn_scores", newest, 120)
        left = {
            t: {r[0] for r in con.execute(f"select distinct as_of_date from ml.{t}").fetchall()}
            for t in ("churn_scores", "clv_predictions")
        }
        per_date = con.execute(
            "select count(*) from (select as_of_date from ml.clv_predictions group by 1 "
            f"having count(*) <> {customers})"
        ).fetchone()[0]
    expected = dates_to_prune(present, newest, 120)
    assert clv.dates == expected and clv.rows == customers * len(expected)
    assert left["clv_predictions"] == set(present) - set(expected) and per_date == 0
    assert clv.dates_kept == len(left["clv_predictions"])
    # churn: the same, except the matured dates without a backtest row, which stay
    assert missing <= set(expected) and missing <= left["churn_scores"]
    assert churn.dates == [d for d in expected if d not in missing]
    assert left["churn_scores"] == left["clv_predictions"] | missing
    assert again == Pruned("churn_scores", [], 0, len(left["churn_scores"]))


def test_an_unbacktested_date_is_kept_keep_days_past_its_maturity(tmp_path):
    present, horizon, keep = days(START, 300), 90, 120
    newest = present[-1]
    grace_ends = newest - dt.timedelta(days=horizon + keep)
    old, recent = sorted(MISSING)
    assert old <= grace_ends < recent  # one past its grace, one within it
    backtested = [d for d in present if d <= newest - dt.timedelta(days=horizon)]
    path = tmp_path / "lifecycle.duckdb"
    score_db(path, present, 5, [d for d in backtested if d not in MISSING])
    with duckdb.connect(str(path)) as con:
        churn = prune_score_history(con, "churn_scores", newest, keep, horizon_days=horizon)
        sql = "select distinct as_of_date from ml.churn_scores"
        left = {r[0] for r in con.execute(sql).fetchall()}
    expected = dates_to_prune(present, newest, keep)
    assert old in churn.dates and recent in left  # without horizon_days both would stay
    assert churn.dates == [d for d in expected if d != recent]


def test_zero_keeps_everything_and_identifiers_are_quoted(tmp_path):
    present = days(START, 200)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute('create schema "odd ""schema"""')
        con.register("f", score_frame("clv_predictions", present, 3))
        con.execute('create table "odd ""schema"""."clv predictions" as select * from f')
        kept_all = prune_score_history(con, "clv predictions", present[-1], 0, 'odd "schema"')
        assert kept_all.rows == 0 and kept_all.dates_kept == len(present)
        pruned = prune_score_history(con, "clv predictions", present[-1], 30, 'odd "schema"')
        n = con.execute('select count(*) from "odd ""schema"""."clv predictions"').fetchone()[0]
    assert pruned.rows == 3 * len(pruned.dates) > 0
    assert n == 3 * (len(present) - len(pruned.dates))
