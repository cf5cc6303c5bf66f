"""Benchmark: BG/NBD fit time and parameter agreement, ml.btyd vs lifetimes, same data, same run.

Run on demand:  uv run python benchmarks/bench_btyd.py [--sizes 10000 100000 1000000]
                [--repeats 3] [--lifetimes-repeats 1] [--lifetimes-max 1000000]

Data: :func:`ml.btyd.simulate.simulate_bgnbd` (BG/NBD with the CDNOW parameters, alpha in days;
ages uniform on 1..547 days; T and recency in whole days as a day-level order log gives; seed =
n). Both libraries get the same three columns and are fitted the way a user would
(``BetaGeoFitter().fit(frequency, recency, T)``, library defaults). Times are wall-clock medians
over the repeats (the first call included); the load average is printed, since the machine is
shared. Reported: unique (frequency, recency, T) rows vs customers, both times and the speedup,
the largest relative parameter difference, both log-likelihoods (lifetimes' own optimum value,
converted from its internal time unit to days, and ours; our formula at lifetimes' parameters as
a cross-check) and our largest relative error against the true parameters.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd

from ml.btyd import BetaGeoFitter
from ml.btyd.simulate import CDNOW_DAYS, simulate_bgnbd

NAMES = ("r", "alpha", "a", "b")


def _timed(fit, repeats: int):
    times, model = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        model = fit()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), times, model


def _lifetimes_fit(cols):
    import lifetimes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lifetimes.BetaGeoFitter().fit(*cols)


def bench_size(n: int, repeats: int, lt_repeats: int, run_lifetimes: bool) -> dict:
    """Fit both libraries on ``n`` simulated customers; one result row."""
    data = simulate_bgnbd(n, seed=n)
    cols = (data["frequency"], data["recency"], data["T"])
    t_ours, all_ours, ours = _timed(lambda: BetaGeoFitter().fit(*cols), repeats)
    row = {
        "n": n,
        "unique_rows": ours.n_unique_rows_,
        "ours_s": t_ours,
        "ours_runs_s": " ".join(f"{t:.3f}" for t in all_ours),
        "ll_ours": ours.log_likelihood_,
    }
    if run_lifetimes:
        t_ref, all_ref, ref = _timed(lambda: _lifetimes_fit(cols), lt_repeats)
        ref_params = np.array([ref.params_[k] for k in NAMES])
        ours_params = np.array([ours.params_[k] for k in NAMES])
        row.update(
            {
                "lifetimes_s": t_ref,
                "lifetimes_runs_s": " ".join(f"{t:.2f}" for t in all_ref),
                "speedup": t_ref / t_ours,
                "max_param_rel_diff": float(np.max(np.abs(ours_params / ref_params - 1))),
                # lifetimes fits in time units of max(T) (its _scale); back to days:
                # LL(days) = LL(scaled) + sum(x) log(scale)
                "ll_lifetimes": -ref._negative_log_likelihood_ * n
                + data["frequency"].sum() * np.log(ref._scale),
                "ll_ours_at_lifetimes_params": float(ours._loglik(ref_params, *cols)[0].sum()),
            }
        )
    row["max_rel_err_vs_truth"] = max(abs(ours.params_[k] / v - 1) for k, v in CDNOW_DAYS.items())
    row.update({k: ours.params_[k] for k in NAMES})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3, help="our fits per size (median)")
    parser.add_argument("--lifetimes-repeats", type=int, default=1)
    parser.add_argument("--lifetimes-max", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}, cpus: {os.cpu_count()}", flush=True)
    rows = []
    for n in args.sizes:
        lt_repeats = args.lifetimes_repeats if n >= 1_000_000 else max(args.lifetimes_repeats, 3)
        rows.append(bench_size(n, args.repeats, lt_repeats, n <= args.lifetimes_max))
        print(pd.Series(rows[-1]).to_string(), "\n", flush=True)
    print(f"load average at end: {os.getloadavg()}")
    cols = ["n", "unique_rows", "ours_s", "lifetimes_s", "speedup", "max_param_rel_diff"]
    cols += ["ll_ours", "ll_lifetimes"]
    table = pd.DataFrame(rows).reindex(columns=cols)
    fmt = {c: "{:.2f}".format for c in ("ll_ours", "ll_lifetimes")}
    fmt.update({c: "{:.3g}".format for c in ("ours_s", "lifetimes_s", "max_param_rel_diff")})
    fmt["speedup"] = "{:.1f}".format
    print(table.to_string(index=False, formatters=fmt))


if __name__ == "__main__":
    main()
