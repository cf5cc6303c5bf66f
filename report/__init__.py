"""Nightly static HTML report of the lifecycle warehouse (no dagster, no network).

``build_report(con)`` reads the marts and ML tables through a (read-only) DuckDB connection
and writes one self-contained HTML file per as-of date plus ``latest.html``::

    python -m report [--warehouse PATH] [--out DIR] [--models DIR] [--as-of YYYY-MM-DD]
"""

from report.build import FIGURE_IDS, ReportResult, build_report, report_dir

__all__ = ["FIGURE_IDS", "ReportResult", "build_report", "report_dir"]
