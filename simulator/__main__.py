"""Command line: ``python -m simulator --customers N --start D --end D --seed S --out DIR``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time

from orchestration.contract import FILE_FORMATS
from simulator.config import LANDING_SOURCES, SimulatorConfig
from simulator.writer import default_truth_dir, run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    ap = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Write a synthetic landing zone and its ground truth.",
    )
    ap.add_argument("--customers", type=int, default=2000, help="customers who sign up")
    ap.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2024, 1, 1))
    ap.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2024, 12, 31))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", required=True, help="landing zone directory")
    ap.add_argument("--truth-dir", default=None, help="default: <parent of out>/ground_truth")
    ap.add_argument("--format", choices=FILE_FORMATS, default="csv")
    ap.add_argument(
        "--bad-rows",
        type=float,
        default=0.0,
        metavar="RATE",
        help="extra invalid rows per valid row, for demoing the quarantine",
    )
    ap.add_argument(
        "--sources",
        default=",".join(LANDING_SOURCES),
        help="comma-separated sources to write (orders is required); default: all",
    )
    ap.add_argument("--clean", action="store_true", help="delete earlier landing files first")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator; print the summary as JSON on stdout."""
    args = parse_args(argv)
    config = SimulatorConfig(
        customers=args.customers,
        start=args.start,
        end=args.end,
        seed=args.seed,
        bad_row_rate=args.bad_rows,
        sources=tuple(s.strip() for s in args.sources.split(",") if s.strip()),
    )
    truth = args.truth_dir if args.truth_dir is not None else default_truth_dir(args.out)
    t0 = time.perf_counter()
    summary = run(config, args.out, truth, fmt=args.format, clean=args.clean)
    elapsed = time.perf_counter() - t0
    print(json.dumps({"rows": summary["rows"], "truth_dir": str(truth)}, indent=2))
    days = config.n_days
    print(
        f"simulated {config.customers} customers x {days} days in {elapsed:.1f} s", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
