"""ML assets: nightly churn and CLV scores as of the newest loaded day (glue around ``ml/``).

One step (``ml_scores``) materialises both assets: the customer base is read from the
warehouse and its features built once, then the churn and the CLV models score it. At a
million customers that load and build is most of the models' nightly cost. A night that
only scores (no model is due for retraining) reads each order as known at the cutoffs it
scores and backtests at, not every version (a third of the rows at a million customers).
"""

import datetime as dt

import dagster as dg
import duckdb
import pandas as pd

from ml.data import HistoryNotLoaded, LifecycleData
from ml.features import build_features
from orchestration.defs.retries import TRANSIENT_RETRY, non_transient
from orchestration.defs.shared import SETTINGS, WAREHOUSE_POOL, WarehouseResource
from orchestration.ml_io import (
    VIEWS,
    as_of_cutoff,
    backtest_new_dates,
    load_lifecycle_data,
    now_utc,
    order_cutoffs,
    record_run,
)
from orchestration.model_ops import (
    ChurnOutcome,
    run_record,
    train_and_score_churn,
    train_and_score_clv,
)
from orchestration.retention import prune_score_history
from orchestration.warehouse import ensure_ml_tables, replace_rows
from report.build import data_uri

STAGING_INPUTS = [dg.AssetKey(["staging", view]) for view in VIEWS.values()]
CHURN_KEY = dg.AssetKey(["ml", "churn_scores"])
CLV_KEY = dg.AssetKey(["ml", "clv_predictions"])
KINDS = {"python", "scikitlearn", "duckdb"}
GATE_CHECK = "churn_quality_gate"


def newest_loaded_day(con: duckdb.DuckDBPyConnection) -> dt.date:
    """Models score as of the newest day loaded into ``raw.orders`` (not the run's
    partitions): a backfill of old days refreshes scores for the newest date only."""
    day = con.execute("select max(_partition_date) from raw.orders").fetchone()[0]
    if day is None:
        raise dg.Failure("raw.orders is empty: load at least one day before scoring")
    return day


def image_md(path) -> dg.MetadataValue:
    """A PNG inlined as markdown, so the plot shows in the asset's metadata in the UI."""
    return dg.MetadataValue.md(f"![{path.stem}]({data_uri(path.read_bytes())})")


@dg.multi_asset(
    name="ml_scores",
    specs=[
        dg.AssetSpec(
            CHURN_KEY,
            deps=STAGING_INPUTS,
            group_name="ml",
            kinds=KINDS,
            description=(
                "P(no order within the churn horizon) per customer with orders, as of the "
                "newest loaded day, from the champion model (see the churn_quality_gate check)."
            ),
        ),
        dg.AssetSpec(
            CLV_KEY,
            deps=STAGING_INPUTS,
            group_name="ml",
            kinds=KINDS,
            description=(
                "P(alive), expected orders and spend next 12 months and CLV: BG/NBD + "
                "Gamma-Gamma, or the gradient-boosting challenger's spend when it wins on the "
                "time holdout."
            ),
        ),
    ],
    check_specs=[dg.AssetCheckSpec(GATE_CHECK, asset=CHURN_KEY)],
    pool=WAREHOUSE_POOL,
    retry_policy=TRANSIENT_RETRY,
)
def ml_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    # A model error is never retried; a lock or I/O error is. The warehouse is closed while
    # the models run, so DuckDB's buffer pool does not add to their memory.
    with non_transient():
        with warehouse.connect() as con:
            ensure_ml_tables(con)
            as_of = newest_loaded_day(con)
            cutoffs = order_cutoffs(con, as_of_cutoff(as_of), SETTINGS)
            data = load_lifecycle_data(con, as_of, cutoffs)
        try:
            events = _score(context, warehouse, data, as_of)
        except HistoryNotLoaded as exc:  # e.g. a champion saved without reference features
            context.log.warning(f"reading every order version and scoring again: {exc}")
            with warehouse.connect() as con:
                data = load_lifecycle_data(con, as_of)
            events = _score(context, warehouse, data, as_of)
    yield from events


def _score(context, warehouse, data: LifecycleData, as_of: dt.date) -> list:
    features = build_features(data, as_of_cutoff(as_of), SETTINGS.churn_horizon_days)
    events = [*_score_churn(context, warehouse, data, as_of, features)]
    events.append(_score_clv(warehouse, data, as_of, features))
    return events


def _score_churn(context, warehouse, data, as_of: dt.date, features: pd.DataFrame):
    cutoff = as_of_cutoff(as_of)
    try:
        outcome = train_and_score_churn(
            data,
            cutoff,
            SETTINGS.model_dir,
            SETTINGS.churn_horizon_days,
            SETTINGS.retrain_every_days,
            SETTINGS.max_train_customers,
            features,
        )
    except ValueError as exc:  # too little matured history to train on
        context.log.warning(f"churn model not trained for {as_of}: {exc}")
        metadata = {"as_of_date": str(as_of), "skipped": str(exc)}
        yield dg.MaterializeResult(asset_key=CHURN_KEY, metadata=metadata)
        yield dg.AssetCheckResult(
            asset_key=CHURN_KEY, check_name=GATE_CHECK, passed=False, metadata={"reason": str(exc)}
        )
        return
    champion = outcome.champion.version if outcome.champion else None
    scores = outcome.scores.assign(as_of_date=as_of, model_version=champion, scored_at=now_utc())
    with warehouse.connect() as con:
        n = replace_rows(con, "churn_scores", scores, "as_of_date = $d", {"d": as_of})
        if outcome.candidate is not None:
            record_run(con, run_record(outcome, as_of))
        backtest = backtest_new_dates(con, data, cutoff, SETTINGS.churn_horizon_days)
        # after the backtest: a churn score date is pruned only once it is backtested
        pruned = prune_score_history(
            con,
            "churn_scores",
            as_of,
            SETTINGS.score_history_days,
            horizon_days=SETTINGS.churn_horizon_days,
        )
    trained = outcome.candidate or outcome.champion
    yield dg.MaterializeResult(
        asset_key=CHURN_KEY,
        metadata={
            "as_of_date": str(as_of),
            "dagster/row_count": n,
            "retrained": outcome.retrained or "no: the champion scored",
            "candidate_version": outcome.candidate.version if outcome.candidate else "none",
            "champion_version": champion or "none",
            "model_card": dg.MetadataValue.path(str(trained.card_path)),
            "drift_alerts": int((outcome.drift["status"] == "alert").sum()),
            "backtest_dates_added": backtest,
            "order_rows_read": len(data.orders),
            "order_versions_read": (
                "every version"
                if data.order_cutoffs is None
                else f"as known at {len(data.order_cutoffs)} cutoff(s)"
            ),
            "history_rows_pruned": pruned.rows,
            "history_dates_pruned": len(pruned.dates),
            **{k: float(v) for k, v in trained.metrics.items() if isinstance(v, int | float)},
            **{f"plot_{k}": image_md(p) for k, p in outcome.plots.items()},
        },
    )
    yield gate_check_result(outcome)


def gate_check_result(outcome: ChurnOutcome) -> dg.AssetCheckResult:
    """The gate's verdict on tonight's candidate; on a night without training, the
    champion keeps scoring and the check says so."""
    if outcome.gate is None:
        champion = outcome.champion
        return dg.AssetCheckResult(
            asset_key=CHURN_KEY,
            check_name=GATE_CHECK,
            passed=True,
            description=(
                f"No candidate tonight: {champion.version} (trained as of "
                f"{champion.meta['as_of'][:10]}) keeps scoring; models are retrained every "
                f"{SETTINGS.retrain_every_days} days."
            ),
            metadata={"scored_by": champion.version},
        )
    return dg.AssetCheckResult(
        asset_key=CHURN_KEY,
        check_name=GATE_CHECK,
        passed=outcome.gate.passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=outcome.gate.summary,
        metadata={
            "reasons": "\n".join(outcome.gate.reasons),
            "scored_by": outcome.champion.version if outcome.champion else "none",
        },
    )


def _score_clv(warehouse, data, as_of: dt.date, features: pd.DataFrame) -> dg.MaterializeResult:
    outcome = train_and_score_clv(
        data,
        as_of_cutoff(as_of),
        SETTINGS.model_dir,
        retrain_every_days=SETTINGS.retrain_every_days,
        max_train_customers=SETTINGS.max_train_customers,
        features=features,
    )
    scoring, version = outcome.scoring, outcome.version.version
    with warehouse.connect() as con:
        scores = scoring.scores.assign(as_of_date=as_of, model_version=version, scored_at=now_utc())
        n = replace_rows(con, "clv_predictions", scores, "as_of_date = $d", {"d": as_of})
        pruned = prune_score_history(con, "clv_predictions", as_of, SETTINGS.score_history_days)
        if outcome.retrained:
            metrics = {**scoring.params, "comparison": scoring.comparison}
            record = {"model_kind": "clv", "model_version": version, "as_of_date": as_of}
            record_run(
                con,
                {**record, "metrics": metrics | {"scored_by": scoring.winner}, "is_champion": True},
            )
    comparison = scoring.comparison
    gini = {m: comparison.get(m, {}).get("gini") for m in ("btyd", "gbm")}
    return dg.MaterializeResult(
        asset_key=CLV_KEY,
        metadata={
            "as_of_date": str(as_of),
            "model_version": version,
            "model_card": dg.MetadataValue.path(str(outcome.version.card_path)),
            "dagster/row_count": n,
            "history_rows_pruned": pruned.rows,
            "history_dates_pruned": len(pruned.dates),
            "scored_by": scoring.winner,
            "retrained": outcome.retrained or "no: the registered models scored",
            "comparison": comparison["reason"],
            "holdout_horizon_days": comparison["horizon_days"],
            **{f"holdout_gini_{m}": float(g) for m, g in gini.items() if g is not None},
            "params": {k: round(float(v), 6) for k, v in scoring.params.items()},
            **{f"plot_{k}": image_md(p) for k, p in outcome.plots.items()},
        },
    )


defs = dg.Definitions(assets=[ml_scores])
