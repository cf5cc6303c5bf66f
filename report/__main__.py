"""``python -m report``: build the report from the warehouse without Dagster."""

from __future__ import annotations

import argparse
import datetime as dt

import duckdb

from orchestration.settings import load_settings
from report.build import build_report, report_dir


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    parser = argparse.ArgumentParser(prog="python -m report", description=__doc__)
    parser.add_argument("--warehouse", default=str(settings.warehouse))
    parser.add_argument("--out", default=None, help="report folder (LIFECYCLE_REPORT_DIR)")
    parser.add_argument("--models", default=str(settings.model_dir))
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None)
    args = parser.parse_args(argv)
    with duckdb.connect(args.warehouse, read_only=True) as con:
        result = build_report(con, report_dir(args.out), args.models, args.as_of)
    missing = [c.id for c in result.charts if not c.has_data]
    print(f"{result.path} (and {result.latest.name}); charts without data: {missing or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
