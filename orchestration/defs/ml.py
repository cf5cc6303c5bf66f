"""ML assets: nightly churn and CLV scores for the as-of day (glue around ``ml/``)."""

import datetime as dt
import hashlib
import json
import uuid

import dagster as dg
import pandas as pd

from ml.churn import ChurnModel
from ml.clv import fit_clv, summary_from_orders
from orchestration.defs.shared import SETTINGS, WAREHOUSE_POOL, WarehouseResource
from orchestration.ml_io import as_of_cutoff, load_lifecycle_data
from orchestration.warehouse import ensure_ml_tables, replace_rows

STAGING_INPUTS = [
    dg.AssetKey(["staging", v])
    for v in ("stg_order_events", "stg_reviews", "stg_surveys", "stg_checkouts", "stg_customers")
]
ML_ASSET = dict(
    group_name="ml",
    pool=WAREHOUSE_POOL,
    kinds={"python", "scikitlearn", "duckdb"},
)


def newest_loaded_day(con) -> dt.date:
    """Models score as of the newest day loaded into ``raw.orders`` (not the run's
    partitions): a backfill of old days refreshes scores for the newest date only."""
    day = con.execute("select max(_partition_date) from raw.orders").fetchone()[0]
    if day is None:
        raise dg.Failure("raw.orders is empty: load at least one day before scoring")
    return day


def _version(kind: str, as_of: dt.date, payload: object) -> str:
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind}-{as_of:%Y%m%d}-{digest[:8]}"


def _record_run(con, kind: str, version: str, as_of: dt.date, metrics: dict) -> None:
    row = pd.DataFrame(
        [
            {
                "run_id": uuid.uuid4().hex,
                "model_kind": kind,
                "model_version": version,
                "trained_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
                "as_of_date": as_of,
                "metrics_json": json.dumps(metrics, default=float),
                "is_champion": True,
            }
        ]
    )
    replace_rows(
        con,
        "model_runs",
        row,
        "model_kind = $k and as_of_date = $d",
        {"k": kind, "d": as_of},
    )


@dg.asset(
    key=["ml", "churn_scores"],
    deps=STAGING_INPUTS,
    description="P(no order in the churn horizon) per customer with orders, as of the day.",
    **ML_ASSET,
)
def churn_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    with warehouse.connect() as con:
        ensure_ml_tables(con)
        as_of = newest_loaded_day(con)
        data = load_lifecycle_data(con, as_of)
        model = ChurnModel(horizon_days=SETTINGS.churn_horizon_days, n_threads=1)
        try:
            model.fit(data, as_of_cutoff(as_of))
        except ValueError as exc:  # too little matured history to train on
            context.log.warning(f"churn model not trained for {as_of}: {exc}")
            return dg.MaterializeResult(metadata={"as_of_date": str(as_of), "skipped": str(exc)})
        scores = model.predict_proba(data, as_of_cutoff(as_of))
        version = _version("churn", as_of, model.metrics_)
        scores["as_of_date"] = as_of
        scores["model_version"] = version
        scores["scored_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
        n = replace_rows(con, "churn_scores", scores, "as_of_date = $d", {"d": as_of})
        _record_run(con, "churn", version, as_of, model.metrics_)
    return dg.MaterializeResult(
        metadata={
            "as_of_date": str(as_of),
            "model_version": version,
            "dagster/row_count": n,
            **{k: float(v) for k, v in model.metrics_.items() if isinstance(v, int | float)},
        }
    )


@dg.asset(
    key=["ml", "clv_predictions"],
    deps=STAGING_INPUTS,
    description="BG/NBD + Gamma-Gamma: P(alive), expected orders/spend next 12 months, CLV.",
    **ML_ASSET,
)
def clv_predictions(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    with warehouse.connect() as con:
        ensure_ml_tables(con)
        as_of = newest_loaded_day(con)
        data = load_lifecycle_data(con, as_of)
        summary = summary_from_orders(data.orders, as_of_cutoff(as_of))
        model = fit_clv(summary)
        scores = model.score(summary, horizon_days=365).reset_index(drop=True)
        params = {**model.transaction_model.params_, **model.spend_model.params_}
        version = _version("clv", as_of, params)
        scores["as_of_date"] = as_of
        scores["model_version"] = version
        scores["scored_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
        n = replace_rows(con, "clv_predictions", scores, "as_of_date = $d", {"d": as_of})
        _record_run(con, "clv", version, as_of, params)
    return dg.MaterializeResult(
        metadata={
            "as_of_date": str(as_of),
            "model_version": version,
            "dagster/row_count": n,
            "params": {k: round(float(v), 6) for k, v in params.items()},
        }
    )


defs = dg.Definitions(assets=[churn_scores, clv_predictions])
