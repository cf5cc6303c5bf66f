"""Synthetic transaction summaries from the BG/NBD process (benchmarks and tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# CDNOW estimates (Fader, Hardie & Lee 2005) with alpha converted from weeks to days
CDNOW_DAYS = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}


def simulate_bgnbd(
    n: int,
    params: dict[str, float] | None = None,
    max_age_days: int = 547,
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate (frequency, recency, T) in whole days for ``n`` customers from BG/NBD.

    Each customer gets a purchase rate lambda ~ Gamma(r, 1/alpha) per day and a drop-out
    probability p ~ Beta(a, b); the age T (days since the first purchase) is uniform on
    1..``max_age_days`` (customers acquired evenly over the period, observed at one cut-off).
    Repeat purchases come at exponential gaps with rate lambda until T; after each one the
    customer drops out with probability p. As a day-level transaction log gives, T is a whole
    number of days and recency is the day of the last repeat purchase (event time floored).

    Parameters
    ----------
    n : int
        Number of customers.
    params : dict, optional
        BG/NBD parameters r, alpha (per day), a, b; default :data:`CDNOW_DAYS`.
    max_age_days : int, default 547
        Largest customer age (1.5 years).
    seed : int, default 0
        Random seed.

    Returns
    -------
    pandas.DataFrame
        Columns frequency, recency, T (floats).
    """
    par = CDNOW_DAYS if params is None else params
    rng = np.random.default_rng(seed)
    lam = rng.gamma(par["r"], 1.0 / par["alpha"], n)
    p = rng.beta(par["a"], par["b"], n)
    T = rng.integers(1, max_age_days + 1, n).astype(float)
    x = np.zeros(n)
    last = np.zeros(n)
    clock = np.zeros(n)
    active = np.arange(n)
    while active.size:
        clock[active] += rng.exponential(1.0 / lam[active])
        active = active[clock[active] <= T[active]]
        x[active] += 1
        last[active] = clock[active]
        active = active[rng.random(active.size) >= p[active]]
    return pd.DataFrame({"frequency": x, "recency": np.floor(last), "T": T})
