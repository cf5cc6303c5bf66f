"""Benchmark: BG/NBD fit time and parameter agreement, ml.btyd vs lifetimes.

Run on demand:  uv run python benchmarks/bench_btyd.py [--sizes 10000 100000 1000000]
                [--lifetimes-max 100000]
Data are synthesised from BG/NBD with the CDNOW parameters (time unit: days, ages up to 1.5
years, recency and T whole days, as produced by ml.clv.rfm_summary). lifetimes is only timed up
to ``--lifetimes-max`` customers (it is slow at 1M); above that only our fitter runs and its
parameters are compared with the true ones.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from ml.btyd import BetaGeoFitter

TRUE = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}


def simulate_bgnbd(n: int, seed: int = 0) -> pd.DataFrame:
    """Simulate (frequency, recency, T) in whole days from BG/NBD with ``TRUE`` parameters."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUE["r"], 1.0 / TRUE["alpha"], n)
    p = rng.beta(TRUE["a"], TRUE["b"], n)
    T = rng.integers(1, 548, n).astype(float)
    x = np.zeros(n)
    last = np.zeros(n)
    clock = np.zeros(n)
    active = np.arange(n)
    while active.size:
        clock[active] += rng.exponential(1.0 / lam[active])
        bought = clock[active] <= T[active]
        active = active[bought]
        x[active] += 1
        last[active] = clock[active]
        active = active[rng.random(active.size) >= p[active]]
    return pd.DataFrame({"frequency": x, "recency": np.floor(last), "T": T})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--lifetimes-max", type=int, default=100_000)
    args = parser.parse_args()
    import lifetimes

    rows = []
    for n in args.sizes:
        data = simulate_bgnbd(n, seed=n)
        cols = (data["frequency"], data["recency"], data["T"])
        t0 = time.perf_counter()
        ours = BetaGeoFitter().fit(*cols)
        t_ours = time.perf_counter() - t0
        row = {"n": n, "unique_rows": len(data.drop_duplicates()), "ours_s": t_ours}
        if n <= args.lifetimes_max:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = lifetimes.BetaGeoFitter().fit(*cols)
            row["lifetimes_s"] = time.perf_counter() - t0
            row["speedup"] = row["lifetimes_s"] / t_ours
            rel = [abs(ours.params_[k] / ref.params_[k] - 1) for k in TRUE]
            row["max_rel_diff_vs_lifetimes"] = max(rel)
            ref_ll = ours._loglik(np.array([ref.params_[k] for k in TRUE]), *cols)[0].sum()
            row["ll_ours_minus_lifetimes"] = ours.log_likelihood_ - ref_ll
        rel_true = [abs(ours.params_[k] / v - 1) for k, v in TRUE.items()]
        row["max_rel_err_vs_truth"] = max(rel_true)
        row.update({k: round(v, 4) for k, v in ours.params_.items()})
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False), flush=True)
    print("\nSummary")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
