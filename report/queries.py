"""Read the report's inputs from the warehouse (read-only DuckDB connection, no writes).

Every query degrades: a missing schema, table or column yields an empty frame (and the
chart says "no data yet") instead of an error, so the report renders on a warehouse that is
still being built up (first night, ML tables empty, a mart renamed).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import pandas as pd

# The as-of date: tonight's segments, else the dbt as-of, else the newest data.
AS_OF_SQL = (
    "select max(as_of_date) from marts.customer_segments",
    "select max(as_of_date) from intermediate.int_as_of_date",
    "select max(date_day) from marts.lifecycle_daily",
    "select max(_partition_date) from raw.orders",
)
ACTIVE_STAGES = ("new", "active", "reactivated")

QUERIES: dict[str, str] = {
    "lifecycle": """
        select date_day, stage, customers from marts.lifecycle_daily
        where date_day <= $as_of order by date_day, stage""",
    "cohorts": """
        select cohort_month, months_since_first_order, customers, retention_rate
        from marts.cohort_retention where cohort_month <= $as_of
        order by cohort_month, months_since_first_order""",
    "nps": """
        select response_month, responses, promoters, passives, detractors, nps
        from marts.nps_monthly
        where dimension = 'all' and response_month <= $as_of order by response_month""",
    "lateness": """
        with reviewed as (
            select review_rating,
                case
                    when delivery_delay_days <= 0 then 'on time'
                    when delivery_delay_days <= 2 then '1-2 days late'
                    when delivery_delay_days <= 6 then '3-6 days late'
                    when delivery_delay_days is not null then '7+ days late'
                    when is_late then 'overdue, not delivered'
                end as bucket
            from marts.fct_orders
            where review_rating is not null and order_date <= $as_of
        )
        select bucket, count(*) as reviews, avg(review_rating) as mean_rating,
            avg(case when review_rating <= 2 then 1.0 else 0.0 end) as low_share
        from reviewed where bucket is not null group by bucket""",
    "segments": """
        select segment, count(*) as customers, sum(clv) as value_at_stake,
            avg(churn_probability) as mean_churn_probability
        from marts.customer_segments
        where as_of_date = (
            select max(as_of_date) from marts.customer_segments where as_of_date <= $as_of)
        group by segment""",
    "clv_deciles": """
        with latest as (
            select clv, p_alive from ml.clv_predictions
            where clv is not null and as_of_date = (
                select max(as_of_date) from ml.clv_predictions where as_of_date <= $as_of)
        ),
        ranked as (select *, ntile(10) over (order by clv desc) as decile from latest)
        select decile, count(*) as customers, sum(clv) as total_clv, avg(clv) as mean_clv,
            avg(p_alive) as mean_p_alive
        from ranked group by decile order by decile""",
    "backtest": """
        select * from ml.churn_backtest where as_of_date <= $as_of
        order by as_of_date desc, n desc limit 1""",
}

KPI_SQL: dict[str, str] = {
    "customers": "select count(*) from marts.dim_customers",
    "active": f"""
        select sum(customers) from marts.lifecycle_daily
        where date_day = $as_of and stage in {ACTIVE_STAGES}""",
    "churn_rate": """
        select avg(churn_probability) from ml.churn_scores where as_of_date = (
            select max(as_of_date) from ml.churn_scores where as_of_date <= $as_of)""",
    "nps": """
        select 100.0 * (sum(promoters) - sum(detractors)) / nullif(sum(responses), 0)
        from marts.nps_monthly
        where dimension = 'all' and response_month <= $as_of
          and response_month > date_trunc('month', $as_of) - interval 3 month""",
    "revenue_30d": """
        select coalesce(sum(net_revenue), 0) from marts.fct_orders
        where order_date > $as_of - interval 30 day and order_date <= $as_of""",
    "clv_total": """
        select sum(clv) from ml.clv_predictions where as_of_date = (
            select max(as_of_date) from ml.clv_predictions where as_of_date <= $as_of)""",
    "currency": "select mode(currency) from marts.fct_orders",
}


@dataclass
class ReportData:
    """Everything the report draws: frames keyed like :data:`QUERIES`, KPI values (None
    when unknown) and the reason each empty frame is empty."""

    as_of: dt.date
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    kpis: dict[str, object] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def frame(self, name: str) -> pd.DataFrame:
        return self.frames.get(name, pd.DataFrame())


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> object:
    try:
        row = con.execute(sql, params or {}).fetchone()
    except duckdb.Error:
        return None
    return None if row is None else row[0]


def resolve_as_of(con: duckdb.DuckDBPyConnection) -> dt.date:
    """The newest as-of date the warehouse knows (today's date on an empty warehouse)."""
    for sql in AS_OF_SQL:
        value = _scalar(con, sql)
        if value is not None:
            return pd.Timestamp(value).date()
    return dt.date.today()


def read_frame(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict
) -> tuple[pd.DataFrame, str | None]:
    """Run ``sql``; on a missing table or column return an empty frame and the reason."""
    used = {k: v for k, v in params.items() if f"${k}" in sql}
    try:
        frame = con.execute(sql, used).df()
    except duckdb.Error as exc:
        return pd.DataFrame(), str(exc).splitlines()[0]
    return frame, None if len(frame) else "the table is empty"


def load_report_data(con: duckdb.DuckDBPyConnection, as_of: dt.date | None = None) -> ReportData:
    """Read every chart's data and the header KPIs as of ``as_of`` (default: newest)."""
    as_of = as_of or resolve_as_of(con)
    data = ReportData(as_of=as_of)
    for name, sql in QUERIES.items():
        frame, reason = read_frame(con, sql, {"as_of": as_of})
        data.frames[name] = frame
        if reason:
            data.missing[name] = reason
    for name, sql in KPI_SQL.items():
        params = {"as_of": as_of} if "$as_of" in sql else {}
        data.kpis[name] = _scalar(con, sql, params)
    return data
