"""The CDNOW sample (Fader, Hardie & Lee 2005) as shipped in the ``lifetimes`` package, and
the BTYD models fitted on it: shared by the BTYD test modules, computed once per session."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import pandas as pd

from ml.btyd import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from ml.clv import rfm_summary

DATA = Path(importlib.util.find_spec("lifetimes").origin).parent / "datasets"


def cdnow_transactions() -> pd.DataFrame:
    """The raw CDNOW sample: one row per purchase (customer_id, date, cds, value)."""
    tx = pd.read_csv(
        DATA / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["idx", "customer_id", "date", "cds", "value"],
        dtype={"date": str},
    )
    tx["date"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    return tx


@functools.cache
def cdnow_summary(unit_days: float = 7.0) -> pd.DataFrame:
    """CDNOW sample, calibration to 1997-09-30, recency and T in units of ``unit_days``
    (weeks by default, as published), built from the raw transactions."""
    summary = rfm_summary(cdnow_transactions(), "1997-09-30", "customer_id", "date", "value")
    summary[["recency", "T"]] /= unit_days
    return summary


@functools.cache
def cdnow_fitted() -> dict:
    """BG/NBD, MBG/NBD, Pareto/NBD and Gamma-Gamma fitted on :func:`cdnow_summary`."""
    s = cdnow_summary()
    x, tx, T = s["frequency"], s["recency"], s["T"]
    return {
        "bg": BetaGeoFitter().fit(x, tx, T),
        "mbg": ModifiedBetaGeoFitter().fit(x, tx, T),
        "pareto": ParetoNBDFitter().fit(x, tx, T),
        "gg": GammaGammaFitter().fit(x, s["monetary_value"]),
    }
