"""Assemble the nightly report: one self-contained HTML file per as-of date.

Charts are inline base64 PNGs and the style sheet is inline, so the file opens anywhere
(mail attachment, file share, ``file://``) with no network access. ``<as_of>.html`` and
``latest.html`` are written to a temporary file in the report folder and renamed into place
(``os.replace``), so a reader never sees a half-written report.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from orchestration.settings import PROJECT_ROOT, resolve_path
from report import charts as ch
from report.churn import churn_charts
from report.queries import ReportData, load_report_data

REPORT_DIR_ENV = "LIFECYCLE_REPORT_DIR"
DEFAULT_REPORT_DIR = "data/reports"
LATEST = "latest.html"
HALF_WIDTH = ("churn-calibration", "churn-lift")  # drawn side by side
FIGURE_IDS = (
    *("lifecycle-stages", "cohort-retention", "nps-trend", "rating-by-lateness"),
    *("segments-value", "churn-calibration", "churn-lift", "clv-deciles"),
)
STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#222;
background:#f5f6f8}header{background:#1f3a5f;color:#fff;padding:18px 32px}
header h1{margin:0 0 4px;font-size:24px}header p{margin:0;opacity:.85}
main{max-width:1180px;margin:0 auto;padding:16px 24px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px;
margin:8px 0 20px}
.kpi{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
.kpi .v{font-size:24px;font-weight:600}.kpi .l{font-size:12px;color:#666}
.figures{display:flex;flex-wrap:wrap;gap:20px}
figure{background:#fff;border-radius:8px;margin:0;padding:14px 18px;box-sizing:border-box;
width:100%;box-shadow:0 1px 3px rgba(0,0,0,.12)}figure.half{width:calc(50% - 10px)}
figure h2{margin:0 0 4px;font-size:18px}
.takeaway{margin:0 0 10px;color:#333}figure img,figure svg{max-width:100%;height:auto;display:block}
.nodata .takeaway{color:#a33}footer{color:#666;font-size:12px;
padding:16px 24px 24px;max-width:1180px;margin:0 auto}
"""


@dataclass(frozen=True)
class ReportResult:
    """Where the report went and what it shows (``charts`` in page order)."""

    path: Path
    latest: Path
    as_of: dt.date
    charts: list[ch.Chart]
    kpis: dict[str, object] = field(default_factory=dict)


def report_dir(value: str | None = None) -> Path:
    """``value`` or env ``LIFECYCLE_REPORT_DIR`` (default ``data/reports``); a relative path
    is resolved against the project root, like the other ``LIFECYCLE_*`` paths."""
    if value:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (PROJECT_ROOT / path).resolve()
    return resolve_path(REPORT_DIR_ENV, DEFAULT_REPORT_DIR)


def make_charts(data: ReportData, model_dir: os.PathLike | str | None) -> list[ch.Chart]:
    """Every figure of the report, in page order (see :data:`FIGURE_IDS`)."""
    currency = str(data.kpis.get("currency") or "")
    made = [
        ch.lifecycle_chart(data.frame("lifecycle")),
        ch.cohort_chart(data.frame("cohorts")),
        ch.nps_chart(data.frame("nps")),
        ch.lateness_chart(data.frame("lateness")),
        ch.segments_chart(data.frame("segments"), currency),
        *churn_charts(model_dir, data.frame("backtest")),
        ch.clv_chart(data.frame("clv_deciles"), currency),
    ]
    return made


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _no_data_svg(text: str) -> str:
    return (
        '<svg width="800" height="120" viewBox="0 0 800 120" '
        'role="img"><rect width="800" height="120" rx="8" fill="#f0f0f0" stroke="#ccc" '
        'stroke-dasharray="6 4"/><text x="400" y="66" text-anchor="middle" font-size="20" '
        f'fill="#777" font-family="sans-serif">{html.escape(text)}</text></svg>'
    )


def _figure_html(chart: ch.Chart) -> str:
    title = html.escape(chart.title)
    if chart.has_data:
        body = f'<img src="{data_uri(chart.png)}" alt="{title}">'
    else:
        body = _no_data_svg("No data yet")
    classes = " ".join(
        c for c, on in (("half", chart.id in HALF_WIDTH), ("nodata", not chart.has_data)) if on
    )
    css = f' class="{classes}"' if classes else ""
    return (
        f'<figure id="{chart.id}"{css}><figcaption><h2>{title}</h2>'
        f'<p class="takeaway">{html.escape(chart.takeaway)}</p></figcaption>{body}</figure>'
    )


def kpi_cards(kpis: dict[str, object]) -> list[tuple[str, str]]:
    """(label, formatted value) of the header KPIs; ``n/a`` when unknown."""

    def fmt(key: str, spec: str) -> str:
        value = kpis.get(key)
        return "n/a" if value is None else format(float(value), spec)

    currency = str(kpis.get("currency") or "")
    return [
        ("Customers", fmt("customers", ",.0f")),
        ("Active (new, active, reactivated)", fmt("active", ",.0f")),
        ("Predicted churn rate", fmt("churn_rate", ".1%")),
        ("NPS (last 3 months)", fmt("nps", ".1f")),
        ("Revenue, last 30 days", ch.money(kpis.get("revenue_30d"), currency)),
        ("Predicted CLV, total", ch.money(kpis.get("clv_total"), currency)),
    ]


def render_html(data: ReportData, charts: list[ch.Chart], generated_at: dt.datetime) -> str:
    """The whole page as one string (no external resources)."""
    cards = "".join(
        f'<div class="kpi"><div class="v">{html.escape(v)}</div><div class="l">{html.escape(k)}'
        "</div></div>"
        for k, v in kpi_cards(data.kpis)
    )
    missing = "; ".join(f"{k}: {v}" for k, v in sorted(data.missing.items()))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Customer lifecycle report {data.as_of}</title><style>{STYLE}</style></head>"
        f"<body><header><h1>Customer lifecycle report</h1><p>As of <strong>{data.as_of}</strong>"
        f" &middot; generated {generated_at:%Y-%m-%d %H:%M} UTC</p></header><main>"
        f'<section class="kpis" id="kpis">{cards}</section>'
        + '<div class="figures">'
        + "".join(_figure_html(c) for c in charts)
        + "</div></main><footer>Sources: marts.lifecycle_daily, marts.cohort_retention, "
        "marts.nps_monthly, marts.fct_orders, marts.customer_segments, ml.churn_scores, "
        "ml.churn_backtest, ml.clv_predictions and the churn model registry."
        + (f" Not available yet: {html.escape(missing)}." if missing else "")
        + "</footer></body></html>"
    )


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_report(
    con: duckdb.DuckDBPyConnection,
    out_dir: os.PathLike | str | None = None,
    model_dir: os.PathLike | str | None = None,
    as_of: dt.date | None = None,
) -> ReportResult:
    """Read the warehouse through ``con`` (read-only is enough), write
    ``<out_dir>/<as_of>.html`` and replace ``<out_dir>/latest.html`` with it.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection to the warehouse; nothing is written through it.
    out_dir : path, optional
        Report folder; default :func:`report_dir` (env ``LIFECYCLE_REPORT_DIR``).
    model_dir : path, optional
        Model registry root holding the churn champion's plots; None shows "no data".
    as_of : datetime.date, optional
        Report date; default the newest as-of date in the warehouse.

    Returns
    -------
    ReportResult
    """
    data = load_report_data(con, as_of)
    charts = make_charts(data, model_dir)
    page = render_html(data, charts, dt.datetime.now(dt.UTC))
    folder = Path(out_dir) if out_dir is not None else report_dir()
    path = folder / f"{data.as_of:%Y-%m-%d}.html"
    write_atomic(path, page)
    write_atomic(folder / LATEST, page)
    return ReportResult(path, folder / LATEST, data.as_of, charts, dict(data.kpis))
