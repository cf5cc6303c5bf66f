"""The models' reads from and writes to the warehouse (glue; no dagster import).

``ml/`` never touches the database: this module turns staging views into the pandas
frames of :class:`ml.data.LifecycleData`, cut at the as-of date (the columns read and the
timestamp that bounds each table come from ``ml.data``: ``SCHEMAS``, ``KNOWN_AT``), and
stores what the models return: model runs and churn backtests.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence

import duckdb
import pandas as pd

from ml.backtest import day_cutoff
from ml.data import KNOWN_AT, SCHEMAS, STATUS_RANK, LifecycleData, to_timestamp
from orchestration.model_ops import churn_backtest, trains_tonight
from orchestration.settings import Settings
from orchestration.warehouse import replace_rows

# LifecycleData table -> the staging view it is read from
VIEWS = {
    "orders": "stg_order_events",
    "reviews": "stg_reviews",
    "surveys": "stg_surveys",
    "checkouts": "stg_checkouts",
    "customers": "stg_customers",
}


# Cutoffs up to which a scoring night reads orders as known at them (one a night, plus a
# backlog of score dates to backtest); beyond, it reads every version (see order_cutoffs).
MAX_ORDER_CUTOFFS = 4

# ml.data column kind -> the SQL type it is read as (decimals and dates would arrive as
# one Python object per value: at 7 M order versions that took ~30 s and 3 GB more)
SQL_TYPES = {"id": "varchar", "str": "varchar", "float": "double", "datetime": "timestamp"}


# Ranks the versions of one order as ml.data.order_snapshot does: by updated_at, then by
# lifecycle stage (an unknown status ranks last, so LifecycleData still rejects it).
_VERSION_ORDER = (
    "epoch_us(updated_at) * 8 + coalesce(case status "
    + " ".join(f"when '{status}' then {rank}" for status, rank in STATUS_RANK.items())
    + " end, 7)"
)


def _orders_at(cutoffs: Sequence[pd.Timestamp]) -> str:
    """The rows of the order versions known at each of ``cutoffs`` ($cutoffs): the version
    ``order_snapshot`` keeps per order at each of them (on an exact tie, one of the tied
    versions, as there)."""
    return (
        'order_event_id in (select arg_max(order_event_id, {order}) from staging."{view}", '
        "unnest($cutoffs) as k(cutoff) where updated_at <= k.cutoff and ordered_at <= k.cutoff "
        "group by order_id, k.cutoff)"
    ).format(order=_VERSION_ORDER, view=VIEWS["orders"])


def load_lifecycle_data(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    order_cutoffs: Sequence[object] | None = None,
) -> LifecycleData:
    """Everything known by the end of ``as_of`` (timestamps before the next midnight).

    Read through Arrow (:meth:`LifecycleData.from_arrow`: one Python string per distinct
    value, none hashed).
    ``order_cutoffs`` (instants up to the end of ``as_of``): read only the order versions
    known at those instants (see :attr:`LifecycleData.order_cutoffs`), e.g. a night that
    only scores; None reads every version."""
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    cutoffs = None
    if order_cutoffs is not None:
        cutoffs = sorted({to_timestamp(c) for c in order_cutoffs})
        if not cutoffs or cutoffs[-1] >= pd.Timestamp(end):
            raise ValueError(f"order_cutoffs must be non-empty and before {end}: {cutoffs}")
    tables = {}
    for name, view in VIEWS.items():
        col_sql = ", ".join(
            f'cast("{c}" as {SQL_TYPES[kind]}) as "{c}"' for c, kind in SCHEMAS[name].items()
        )
        where, params = f'"{KNOWN_AT[name]}" < $end', {"end": end}
        if name == "orders" and cutoffs is not None:
            where, params = _orders_at(cutoffs), {"cutoffs": [c.to_pydatetime() for c in cutoffs]}
        sql = f'select {col_sql} from staging."{view}" where {where}'
        tables[name] = con.execute(sql, params).to_arrow_table()
    return LifecycleData.from_arrow(tables, order_cutoffs=cutoffs)


def unbacktested_dates(
    con: duckdb.DuckDBPyConnection, cutoff: pd.Timestamp, horizon_days: int
) -> list[dt.date]:
    """Churn score dates whose horizon has passed by ``cutoff`` and that have no backtest."""
    rows = con.execute(
        "select distinct as_of_date from ml.churn_scores where as_of_date <= $matured "
        "and as_of_date not in (select as_of_date from ml.churn_backtest) order by 1",
        {"matured": (cutoff - pd.Timedelta(days=horizon_days)).date()},
    ).fetchall()
    return [row[0] for row in rows]


def order_cutoffs(
    con: duckdb.DuckDBPyConnection, cutoff: pd.Timestamp, settings: Settings
) -> list[pd.Timestamp] | None:
    """The instants tonight's models read orders at (``order_cutoffs`` of
    :func:`load_lifecycle_data`): the scoring cutoff and the cutoffs of the score dates to
    backtest; None (every version) when a model trains tonight or when there are more than
    ``MAX_ORDER_CUTOFFS`` (each one is a pass over every version)."""
    horizon = settings.churn_horizon_days
    if trains_tonight(settings.model_dir, cutoff, settings.retrain_every_days, horizon):
        return None
    cutoffs = [cutoff, *(day_cutoff(d) for d in unbacktested_dates(con, cutoff, horizon))]
    return cutoffs if len(cutoffs) <= MAX_ORDER_CUTOFFS else None


def as_of_cutoff(as_of: dt.date) -> pd.Timestamp:
    """The instant the as-of day ends: features see everything before it."""
    return pd.Timestamp(as_of) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)


def now_utc() -> pd.Timestamp:
    """Now, as a naive UTC timestamp (the warehouse's timestamps are naive UTC)."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


def record_run(con: duckdb.DuckDBPyConnection, record: dict) -> None:
    """Append a row to ``ml.model_runs`` (replacing an earlier run of the same kind and
    version on the same as-of date, so re-runs do not pile up)."""
    row = pd.DataFrame(
        [
            {
                "run_id": uuid.uuid4().hex,
                "model_kind": record["model_kind"],
                "model_version": record["model_version"],
                "trained_at": now_utc(),
                "as_of_date": record["as_of_date"],
                "metrics_json": json.dumps(record["metrics"], default=float),
                "is_champion": record["is_champion"],
            }
        ]
    )
    where = "model_kind = $k and model_version = $v and as_of_date = $d"
    params = {"k": record["model_kind"], "v": record["model_version"], "d": record["as_of_date"]}
    replace_rows(con, "model_runs", row, where, params)


def backtest_new_dates(
    con: duckdb.DuckDBPyConnection, data: LifecycleData, cutoff: pd.Timestamp, horizon_days: int
) -> int:
    """Backtest the churn score dates whose horizon has passed by ``cutoff`` and that have
    no backtest yet (reading only those scores: the score history grows by a population
    every night). Returns the number of dates added to ``ml.churn_backtest``."""
    dates = unbacktested_dates(con, cutoff, horizon_days)
    if not dates:
        return 0
    history = con.execute(
        "select customer_id, as_of_date, churn_probability, model_version from ml.churn_scores "
        "where as_of_date in (select unnest($d))",
        {"d": dates},
    ).df()
    if history.empty:
        return 0
    backtest = churn_backtest(history, data, cutoff, horizon_days)
    dates = sorted(set(backtest["as_of_date"]))
    if not dates:
        return 0
    replace_rows(con, "churn_backtest", backtest, "as_of_date in (select unnest($d))", {"d": dates})
    return len(dates)
