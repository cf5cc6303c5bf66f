"""The report's charts as PNG bytes (matplotlib object API on the Agg canvas: no display, no
pyplot global state). Each function takes the frame of :mod:`report.queries` and returns a
:class:`Chart` with an id, a title and a one-line takeaway; an empty frame gives a chart
without an image whose takeaway says why (the page then draws a "no data yet" panel).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

STAGES = ("prospect", "new", "active", "reactivated", "at_risk", "lapsed")
STAGE_COLORS = ("#c7c7c7", "#9ecae1", "#3182bd", "#31a354", "#fd8d3c", "#de2d26")
SEGMENTS = (
    *("service_recovery", "vip_nurture", "high_potential_newcomer", "win_back"),
    *("cart_recovery", "advocacy_ask", "reactivation", "nurture", "prospect"),
)
LATENESS = ("on time", "1-2 days late", "3-6 days late", "7+ days late", "overdue, not delivered")
DPI = 100


@dataclass(frozen=True)
class Chart:
    """One figure of the report: ``png`` is None when there is no data yet."""

    id: str
    title: str
    takeaway: str
    png: bytes | None = None

    @property
    def has_data(self) -> bool:
        return self.png is not None


def no_data(chart_id: str, title: str, reason: str) -> Chart:
    return Chart(chart_id, title, f"No data yet: {reason}.")


def _figure(width: float = 11.0, height: float = 3.8, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def money(value: object, currency: str = "") -> str:
    """``12,345`` (with the currency code appended when known); ``n/a`` for missing values."""
    if value is None or pd.isna(value):
        return "n/a"
    return f"{float(value):,.0f} {currency}".strip()


def lifecycle_chart(frame: pd.DataFrame) -> Chart:
    """Stacked area of customers per lifecycle stage per day."""
    cid, title = "lifecycle-stages", "Customers per lifecycle stage"
    if frame.empty:
        return no_data(cid, title, "marts.lifecycle_daily has no rows")
    wide = frame.pivot_table(index="date_day", columns="stage", values="customers", aggfunc="sum")
    wide = wide.reindex(columns=STAGES).fillna(0).sort_index()
    days = pd.to_datetime(wide.index)
    fig, (ax,) = _figure()
    ax.stackplot(days, wide.T.to_numpy(), labels=STAGES, colors=STAGE_COLORS, alpha=0.9)
    ax.set(ylabel="customers", xlim=(days[0], days[-1]))
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=6, fontsize=8, frameon=False)
    active = wide[["new", "active", "reactivated"]].sum(axis=1)
    before = active[days <= days[-1] - pd.Timedelta(days=30)]
    change = f" ({active.iloc[-1] - before.iloc[-1]:+,.0f} in 30 days)" if len(before) else ""
    takeaway = (
        f"{active.iloc[-1]:,.0f} customers are new, active or reactivated on "
        f"{days[-1]:%Y-%m-%d}{change}; {wide['at_risk'].iloc[-1]:,.0f} are at risk and "
        f"{wide['lapsed'].iloc[-1]:,.0f} lapsed."
    )
    return Chart(cid, title, takeaway, _png(fig))


def cohort_chart(frame: pd.DataFrame) -> Chart:
    """Heatmap of retention by monthly cohort and months since the first order (month 0,
    100 % by definition, is left out so the colour scale shows the later months)."""
    cid, title = "cohort-retention", "Cohort retention (share of the cohort ordering)"
    later = frame[frame["months_since_first_order"] > 0] if not frame.empty else frame
    if later.empty:
        return no_data(cid, title, "marts.cohort_retention has no month after a first order")
    grid = later.pivot_table(
        index="cohort_month", columns="months_since_first_order", values="retention_rate"
    ).sort_index()
    fig, (ax,) = _figure(height=max(3.0, 0.18 * len(grid) + 1.4))
    image = ax.imshow(grid.to_numpy(), aspect="auto", cmap="YlGnBu", interpolation="nearest")
    step = max(1, len(grid) // 16)
    ax.set_yticks(range(0, len(grid), step))
    ax.set_yticklabels([f"{pd.Timestamp(m):%Y-%m}" for m in grid.index[::step]], fontsize=7)
    xstep = max(1, len(grid.columns) // 12)
    ax.set_xticks(range(0, len(grid.columns), xstep))
    ax.set_xticklabels([str(c) for c in grid.columns[::xstep]], fontsize=8)
    ax.set(xlabel="months since first order", ylabel="cohort")
    fig.colorbar(image, ax=ax, format=lambda v, _: f"{v:.0%}", shrink=0.9)
    parts = [
        f"month {m}: {grid[m].mean():.1%}"
        for m in [m for m in (1, 3, 6, 12) if m in grid] or list(grid.columns[:1])
        if grid[m].notna().any()
    ]
    takeaway = "Mean retention across cohorts, " + ", ".join(parts) + "."
    return Chart(cid, title, takeaway, _png(fig))


def nps_chart(frame: pd.DataFrame) -> Chart:
    """Monthly promoter / passive / detractor shares (bars) and NPS (line)."""
    cid, title = "nps-trend", "NPS and promoter / passive / detractor shares"
    frame = frame[frame["responses"] > 0] if not frame.empty else frame
    if frame.empty:
        return no_data(cid, title, "marts.nps_monthly has no answers")
    months = [f"{pd.Timestamp(m):%Y-%m}" for m in frame["response_month"]]
    x = np.arange(len(months))
    shares = {
        k: frame[k].to_numpy(float) / frame["responses"].to_numpy(float)
        for k in ("detractors", "passives", "promoters")
    }
    fig, (ax,) = _figure()
    bottom = np.zeros(len(x))
    for (label, share), color in zip(
        shares.items(), ("#de2d26", "#bdbdbd", "#31a354"), strict=True
    ):
        ax.bar(x, share, bottom=bottom, color=color, label=label, width=0.8)
        bottom += share
    ax.set(ylim=(0, 1), ylabel="share of answers")
    step = max(1, len(x) // 12)
    ax.set_xticks(x[::step], months[::step], fontsize=8, rotation=45)
    line = ax.twinx()
    line.plot(x, frame["nps"], color="black", marker="o", ms=3, label="NPS")
    line.set(ylim=(-100, 100), ylabel="NPS")
    above = dict(fontsize=8, frameon=False, bbox_to_anchor=(0, 1.0, 1, 0.1))
    ax.legend(loc="lower left", ncols=3, **above)
    line.legend(loc="lower right", **above)
    last = frame.iloc[-1]
    delta = (
        f" ({last['nps'] - frame['nps'].iloc[-2]:+.1f} vs the month before)"
        if len(frame) > 1
        else ""
    )
    takeaway = (
        f"NPS {last['nps']:.1f} in {months[-1]}{delta} from {int(last['responses']):,} answers: "
        f"{shares['promoters'][-1]:.0%} promoters, {shares['detractors'][-1]:.0%} detractors."
    )
    return Chart(cid, title, takeaway, _png(fig))


def lateness_chart(frame: pd.DataFrame) -> Chart:
    """Mean review rating per delivery-lateness bucket, with the number of reviews."""
    cid, title = "rating-by-lateness", "Review rating by delivery lateness"
    if frame.empty:
        return no_data(cid, title, "marts.fct_orders has no reviewed orders")
    frame = frame.set_index("bucket").reindex([b for b in LATENESS if b in set(frame["bucket"])])
    fig, (ax,) = _figure()
    colors = ["#31a354"] + ["#fd8d3c"] * (len(frame) - 1) if frame.index[0] == "on time" else None
    bars = ax.bar(frame.index, frame["mean_rating"], color=colors)
    ax.bar_label(
        bars,
        labels=[
            f"{r:.2f} (n={n:,})"
            for r, n in zip(frame["mean_rating"], frame["reviews"], strict=True)
        ],
        fontsize=8,
    )
    ax.set(ylim=(0, 5.4), ylabel="mean rating (1-5)")
    ax.tick_params(axis="x", labelsize=8)
    late = frame.drop(index="on time", errors="ignore")
    if "on time" in frame.index and len(late):
        on_time = frame.loc["on time"]
        late_mean = np.average(late["mean_rating"], weights=late["reviews"])
        late_low = np.average(late["low_share"], weights=late["reviews"])
        takeaway = (
            f"Late orders are rated {late_mean:.2f} on average vs {on_time['mean_rating']:.2f} "
            f"on time; 1-2 stars: {late_low:.0%} of late vs {on_time['low_share']:.0%} of "
            "on-time reviews."
        )
    else:
        takeaway = f"Only {', '.join(frame.index)} orders have reviews so far."
    return Chart(cid, title, takeaway, _png(fig))


def segments_chart(frame: pd.DataFrame, currency: str = "") -> Chart:
    """Customers and value at stake (sum of predicted CLV) per segment."""
    cid, title = "segments-value", "Segment sizes and value at stake"
    if frame.empty:
        return no_data(cid, title, "marts.customer_segments has no rows")
    order = [s for s in SEGMENTS if s in set(frame["segment"])]
    order += sorted(set(frame["segment"]) - set(order))
    frame = frame.set_index("segment").reindex(order[::-1])
    value = frame["value_at_stake"].astype(float).fillna(0)
    fig, (left, right) = _figure(ncols=2)
    bars = left.barh(frame.index, frame["customers"], color="#3182bd")
    left.bar_label(bars, labels=[f"{n:,}" for n in frame["customers"]], fontsize=7)
    left.set(xlabel="customers", title="Customers")
    bars = right.barh(frame.index, value, color="#756bb1")
    right.bar_label(bars, labels=[money(v) for v in value], fontsize=7)
    right.set(xlabel=f"sum of predicted CLV {currency}".strip(), title="Value at stake")
    right.set_yticklabels([])
    for ax in (left, right):
        ax.tick_params(labelsize=8)
        ax.margins(x=0.25)
    total = value.sum()
    if total > 0:
        top = value.idxmax()
        takeaway = (
            f"{int(frame['customers'].sum()):,} customers in {len(frame)} segments; {top} holds "
            f"the most value at stake: {money(value[top], currency)} ({value[top] / total:.0%})."
        )
    else:
        largest = frame["customers"].idxmax()
        size = int(frame.loc[largest, "customers"])
        takeaway = f"Largest segment: {largest} ({size:,}); no CLV scored yet."
    return Chart(cid, title, takeaway, _png(fig))


def clv_chart(frame: pd.DataFrame, currency: str = "") -> Chart:
    """Total predicted CLV per decile of customers (1 = highest CLV)."""
    cid, title = "clv-deciles", "Predicted 12-month CLV by decile"
    if frame.empty or frame["total_clv"].fillna(0).sum() <= 0:
        return no_data(cid, title, "ml.clv_predictions has no scores")
    total = frame["total_clv"].sum()
    fig, (ax,) = _figure()
    bars = ax.bar(frame["decile"].astype(str), frame["total_clv"], color="#756bb1")
    ax.bar_label(bars, labels=[f"{v / total:.0%}" for v in frame["total_clv"]], fontsize=8)
    ax.set(xlabel="decile (1 = highest CLV)", ylabel=f"total CLV {currency}".strip())
    top = frame.iloc[0]
    takeaway = (
        f"The top 10 % of customers ({int(top['customers']):,}) hold "
        f"{top['total_clv'] / total:.0%} of the {money(total, currency)} predicted; "
        f"mean {money(top['mean_clv'], currency)} vs "
        f"{money(frame['mean_clv'].iloc[-1], currency)} in the bottom decile."
    )
    return Chart(cid, title, takeaway, _png(fig))
