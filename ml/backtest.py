"""Backtest of stored churn scores once their horizon has passed (table ``ml.churn_backtest``).

A score written as of day ``D`` (cutoff = the end of ``D``, as the orchestration scores it)
predicts "no order in (cutoff, cutoff + horizon]". Once the data reaches that window's end,
the labels of :func:`ml.features.churn_labels` are known and the stored probabilities are
compared with them, one row per (as-of date, model version).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ml.data import LifecycleData, to_timestamp
from ml.features import DAY, churn_labels
from ml.metrics import score_report

COLUMNS = [
    *("as_of_date", "model_version", "horizon_days", "label_end", "n", "n_unlabelled"),
    *("churn_rate", "mean_probability", "roc_auc", "pr_auc", "brier", "ece", "lift_top_decile"),
]
SCORE_COLUMNS = ("customer_id", "as_of_date", "churn_probability", "model_version")


def day_cutoff(as_of_date: object) -> pd.Timestamp:
    """The instant that ends day ``as_of_date`` (the cutoff scores of that day use)."""
    return to_timestamp(as_of_date).normalize() + DAY - pd.Timedelta(microseconds=1)


def matured_dates(dates: object, horizon_days: int, data_end: object) -> list[dt.date]:
    """The distinct dates whose label window ``(cutoff, cutoff + horizon]`` ends by ``data_end``."""
    end = to_timestamp(data_end)
    out = []
    for d in sorted({to_timestamp(x).normalize() for x in pd.Series(dates).dropna()}):
        if day_cutoff(d) + horizon_days * DAY <= end:
            out.append(d.date())
    return out


def backtest_scores(
    scores: pd.DataFrame,
    data: LifecycleData,
    *,
    horizon_days: int = 90,
    data_end: object | None = None,
) -> pd.DataFrame:
    """Evaluate stored churn scores whose horizon has passed.

    Parameters
    ----------
    scores : pandas.DataFrame
        Columns customer_id, as_of_date, churn_probability, model_version (e.g. the table
        ``ml.churn_scores``); several dates and versions allowed. ``as_of_date`` is a day;
        its cutoff is the end of that day (:func:`day_cutoff`).
    data : LifecycleData
        The data known now (labels are judged by the latest order versions in it).
    horizon_days : int
        Churn horizon of the scores.
    data_end : timestamp-like, optional
        Up to when the data is complete (default ``data.end``); the orchestration passes the
        end of the newest loaded day.

    Returns
    -------
    pandas.DataFrame
        One row per matured (as_of_date, model_version): n (scored customers with a label),
        n_unlabelled (scored but outside the label population, dropped), churn_rate,
        mean_probability, roc_auc, pr_auc, brier, ece, lift_top_decile (NaN where undefined,
        e.g. AUC with one class). Empty (with these columns) when nothing has matured.
    """
    missing = set(SCORE_COLUMNS) - set(scores.columns)
    if missing:
        raise ValueError(f"scores is missing columns {sorted(missing)}")
    end = data.end if data_end is None else to_timestamp(data_end)
    frame = scores.dropna(subset=["churn_probability"]).copy()
    frame["_day"] = pd.to_datetime(frame["as_of_date"]).dt.normalize()
    frame["customer_id"] = frame["customer_id"].astype(str)
    rows = []
    for day in matured_dates(frame["_day"], horizon_days, end):
        cutoff = day_cutoff(day)
        labels = churn_labels(data, cutoff, horizon_days, as_of=end)
        of_day = frame[frame["_day"] == pd.Timestamp(day)]
        for version, group in of_day.groupby("model_version", sort=True, dropna=False):
            group = group.drop_duplicates("customer_id", keep="last")
            y = labels.reindex(group["customer_id"].to_numpy())
            known = y.notna().to_numpy()
            yk, pk = y.to_numpy()[known].astype(int), group["churn_probability"].to_numpy()[known]
            row = {
                "as_of_date": day,
                "model_version": version,
                "horizon_days": int(horizon_days),
                "label_end": (cutoff + horizon_days * DAY).date(),
                "n": int(known.sum()),
                "n_unlabelled": int((~known).sum()),
                "churn_rate": float(yk.mean()) if len(yk) else np.nan,
                "mean_probability": float(pk.mean()) if len(pk) else np.nan,
            }
            if len(yk):
                row.update(score_report(yk, pk))
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS).astype({"n": int, "n_unlabelled": int})
