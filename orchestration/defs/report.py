"""The nightly HTML report as an asset (glue around ``report/``): read-only on the warehouse,
one self-contained file per as-of date under ``LIFECYCLE_REPORT_DIR`` plus ``latest.html``."""

import dagster as dg

from orchestration.defs.shared import SETTINGS, WarehouseResource
from report import build_report, report_dir
from report.build import data_uri

# Charts attached to the materialization as images (the first three that have data).
KEY_PLOTS = ("segments-value", "lifecycle-stages", "churn-lift", "clv-deciles", "nps-trend")


@dg.asset(
    key=["reports", "nightly_report"],
    group_name="reports",
    deps=[
        dg.AssetKey(["marts", "customer_segments"]),
        dg.AssetKey(["ml", "churn_scores"]),
        dg.AssetKey(["ml", "clv_predictions"]),
    ],
    kinds={"python", "html"},
    description=(
        "Static HTML report as of the newest as-of date: lifecycle stages over time, cohort "
        "retention, NPS, rating by lateness, segments and value at stake, churn model "
        "calibration and lift, CLV deciles. Written to LIFECYCLE_REPORT_DIR/<as_of>.html and "
        "latest.html (default data/reports)."
    ),
)
def nightly_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    # The report folder is read at run time so a changed LIFECYCLE_REPORT_DIR needs no reload.
    with warehouse.connect(read_only=True) as con:
        result = build_report(con, report_dir(), SETTINGS.model_dir)
    empty = [c.id for c in result.charts if not c.has_data]
    if empty:
        context.log.info(f"report {result.as_of}: no data yet for {', '.join(empty)}")
    with_data = {c.id: c for c in result.charts if c.has_data}
    plots = {
        f"plot_{cid.replace('-', '_')}": dg.MetadataValue.md(
            f"**{with_data[cid].title}**: {with_data[cid].takeaway}\n\n"
            f"![{cid}]({data_uri(with_data[cid].png)})"
        )
        for cid in [k for k in KEY_PLOTS if k in with_data][:3]
    }
    return dg.MaterializeResult(
        metadata={
            "as_of_date": str(result.as_of),
            "path": dg.MetadataValue.path(str(result.path)),
            "latest": dg.MetadataValue.path(str(result.latest)),
            "url": dg.MetadataValue.url(result.path.as_uri()),
            "charts_with_data": len(with_data),
            "charts_without_data": ", ".join(empty) or "none",
            **{
                f"kpi_{k}": float(v)
                for k, v in result.kpis.items()
                if v is not None and not isinstance(v, str)
            },
            **plots,
        }
    )


defs = dg.Definitions(assets=[nightly_report])
