"""Feature drift: population stability index (PSI) per feature.

PSI = sum over bins of (c - r) * ln(c / r), with r and c the shares of the reference
(training window) and current (scoring) rows in each bin. Bins come from the reference only:

* numeric features: edges at the reference quantiles (duplicates merged, outer bins open
  so values outside the reference range land in the first/last bin);
* categorical features (non-numeric dtype, or at most ``max_categories`` distinct numeric
  values, e.g. one-hot or count features): one bin per reference value plus one bin for
  values never seen in the reference;
* missing values (NaN/None) always form their own bin.

Empty bins get the share ``eps`` so the logarithm stays finite. Usual reading: < 0.1 stable,
0.1-0.25 moderate shift (warn), > 0.25 significant shift (alert).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

WARN, ALERT = 0.1, 0.25
COLUMNS = ["feature", "psi", "status", "kind", "n_bins", "n_reference", "n_current"]


def _is_categorical(ref: pd.Series, max_categories: int) -> bool:
    if not pd.api.types.is_numeric_dtype(ref) or pd.api.types.is_bool_dtype(ref):
        return True
    return ref.dropna().nunique() <= max_categories


def _shares_numeric(ref: pd.Series, cur: pd.Series, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    r, c = ref.to_numpy(float), cur.to_numpy(float)
    finite = r[~np.isnan(r)]
    if len(finite):
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, n_bins + 1))[1:-1])
    else:
        edges = np.array([])
    n = len(edges) + 2  # value bins + the NaN bin (last)

    def counts(x: np.ndarray) -> np.ndarray:
        nan = np.isnan(x)
        idx = np.searchsorted(edges, x[~nan], side="right")
        return np.append(np.bincount(idx, minlength=n - 1), nan.sum()).astype(float)

    return counts(r), counts(c)


def _shares_categorical(ref: pd.Series, cur: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    levels = pd.Index(ref.dropna().unique())
    out = []
    for s in (ref, cur):
        known = s.dropna()
        vc = known.value_counts().reindex(levels, fill_value=0).to_numpy(float)
        unseen = float((~known.isin(levels)).sum())
        out.append(np.append(vc, [unseen, float(s.isna().sum())]))
    return out[0], out[1]


def _psi(ref: pd.Series, cur: pd.Series, n_bins: int, eps: float, categorical: bool):
    if categorical:
        if ref.dtype != cur.dtype:  # match values across dtypes (1 == 1.0 == True)
            ref, cur = ref.astype(object), cur.astype(object)
        r, c = _shares_categorical(ref, cur)  # same dtype: no Python object per row
    else:
        r, c = _shares_numeric(ref, pd.to_numeric(cur, errors="coerce"), n_bins)
    r = np.maximum(r / r.sum(), eps)
    c = np.maximum(c / c.sum(), eps)
    return float(np.sum((c - r) * np.log(c / r))), len(r)


def psi(
    reference: object,
    current: object,
    *,
    n_bins: int = 10,
    eps: float = 1e-4,
    categorical: bool | None = None,
    max_categories: int = 10,
) -> float:
    """PSI between two samples of one feature (NaN if either sample is empty).

    ``categorical`` forces the binning; None chooses as described in the module docstring.
    """
    ref, cur = pd.Series(reference), pd.Series(current)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    if categorical is None:
        categorical = _is_categorical(ref, max_categories)
    return _psi(ref, cur, n_bins, eps, categorical)[0]


def _status(value: float, warn: float, alert: float) -> str:
    if np.isnan(value):
        return "missing"
    return "alert" if value > alert else "warn" if value > warn else "ok"


def feature_psi(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    n_bins: int = 10,
    eps: float = 1e-4,
    max_categories: int = 10,
    warn: float = WARN,
    alert: float = ALERT,
) -> pd.DataFrame:
    """PSI of every feature between ``reference`` (training) and ``current`` (scoring) rows.

    Parameters
    ----------
    reference, current : pandas.DataFrame
        One column per feature (e.g. :func:`ml.features.build_features` at a training cutoff
        and at the scoring date).
    features : sequence of str, optional
        Columns to compare (default: the union of both frames' columns, sorted). A feature
        absent from one frame gets ``psi`` NaN and status ``"missing"``.

    Returns
    -------
    pandas.DataFrame
        Columns feature, psi, status (ok / warn > ``warn`` / alert > ``alert`` / missing),
        kind (numeric / categorical), n_bins, n_reference, n_current; sorted by psi descending.
    """
    if features is None:
        features = sorted(set(reference.columns) | set(current.columns))
    rows = []
    for f in features:
        if f not in reference.columns or f not in current.columns:
            rows.append((f, np.nan, "missing", None, 0, len(reference), len(current)))
            continue
        ref, cur = reference[f], current[f]
        cat = _is_categorical(ref, max_categories)
        if len(ref) == 0 or len(cur) == 0:
            value, n = float("nan"), 0
        else:
            value, n = _psi(ref, cur, n_bins, eps, cat)
        rows.append(
            (f, value, _status(value, warn, alert), "categorical" if cat else "numeric", n)
            + (len(ref), len(cur))
        )
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["psi"] = out["psi"].astype(float)
    out = out.sort_values(["psi", "feature"], ascending=[False, True], na_position="first")
    return out.reset_index(drop=True)


def drift_summary(table: pd.DataFrame) -> dict:
    """Counts per status and the largest PSI (for run metadata)."""
    counts = table["status"].value_counts()
    top = table.dropna(subset=["psi"]).head(1)
    return {
        "n_features": int(len(table)),
        **{f"n_{s}": int(counts.get(s, 0)) for s in ("ok", "warn", "alert", "missing")},
        "max_psi": float(top["psi"].iloc[0]) if len(top) else float("nan"),
        "max_psi_feature": str(top["feature"].iloc[0]) if len(top) else None,
    }
