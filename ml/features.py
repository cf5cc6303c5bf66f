"""Point-in-time customer features and churn labels.

Everything in :func:`build_features` is computed from what was *known* at the cutoff: the
latest version of each order with ``updated_at <= cutoff`` (see :func:`ml.data.order_snapshot`),
and reviews, survey answers and checkouts with timestamps ``<= cutoff``. Comparisons are
inclusive; pass the instant that ends the as-of day if that is what "as of day D" means.
Durations are in (fractional) days.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from ml.data import COMPLETED_ORDER_KEY, CUSTOMER_KEY, ORDER_KEY, LifecycleData, to_timestamp

DAY = pd.Timedelta(days=1)
KEY = CUSTOMER_KEY  # rows are grouped by integer customer keys (see LifecycleData)
BTYD_COLUMNS = ("btyd_p_no_purchase", "btyd_expected_purchases")  # horizon-dependent
WINDOWS = (30, 90, 180, 365)
MIN_BTYD_CUSTOMERS = 20  # below this, BTYD columns are NaN (no fit)
FIT_ERRORS = (ValueError, RuntimeError, ArithmeticError, np.linalg.LinAlgError)


def _days(delta: pd.Series) -> pd.Series:
    return delta / DAY


def _purchases(data: LifecycleData, cutoff: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(snapshot of all orders known at cutoff, its non-cancelled orders sorted by time);
    cached in ``data`` (read-only)."""
    snap = data.snapshot(cutoff)

    def valid(_) -> pd.DataFrame:
        v = snap[snap["status"] != "cancelled"]
        v = v.sort_values([KEY, "ordered_at", ORDER_KEY], kind="mergesort")
        return v.reset_index(drop=True)

    return snap, data.cached("purchases", cutoff, valid)


def _order_features(snap: pd.DataFrame, v: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    g = v.groupby(KEY, sort=True)
    f = pd.DataFrame(index=g.size().index)
    f["recency_days"] = _days(cutoff - g["ordered_at"].max())
    # a cancelled order is a visit too (and, like any order, a moment a customer may leave)
    f["recency_any_order_days"] = _days(cutoff - snap.groupby(KEY)["ordered_at"].max())
    f["frequency"] = g.size().astype(float)
    f["monetary_total"] = g["order_total"].sum()
    f["monetary_mean"] = g["order_total"].mean()
    f["tenure_days"] = _days(cutoff - g["ordered_at"].min())

    gap = _days(g["ordered_at"].diff())
    by = v[KEY]
    gg = gap.groupby(by)
    f["gap_mean"] = gg.mean()
    f["gap_median"] = gg.median()
    f["recency_gap_ratio"] = f["recency_days"] / f["gap_mean"].where(f["gap_mean"] > 0)
    f["last_gap_ratio"] = gg.last() / f["gap_mean"].where(f["gap_mean"] > 0)

    for w in WINDOWS:
        recent = v["ordered_at"] > cutoff - w * DAY
        f[f"orders_{w}d"] = recent.groupby(by).sum().astype(float)
    last90 = v["order_total"].where(v["ordered_at"] > cutoff - 90 * DAY, 0.0)
    prior = (v["ordered_at"] <= cutoff - 90 * DAY) & (v["ordered_at"] > cutoff - 180 * DAY)
    prior90 = v["order_total"].where(prior, 0.0)
    f["spend_90d"] = last90.groupby(by).sum()
    f["spend_prior_90d"] = prior90.groupby(by).sum()
    f["spend_trend"] = np.log1p(f["spend_90d"]) - np.log1p(f["spend_prior_90d"])

    disc = v["discount_total"].fillna(0.0)
    f["discounted_order_share"] = (disc > 0).groupby(by).mean()
    gross = f["monetary_total"] + disc.groupby(by).sum()
    f["discount_rate"] = (disc.groupby(by).sum() / gross.where(gross > 0)).fillna(0)
    f["return_share"] = (v["status"] == "returned").groupby(by).mean()
    cancelled = (snap["status"] == "cancelled").groupby(snap[KEY]).mean()
    f["cancel_share"] = cancelled.reindex(f.index)
    return f.join(_delivery_features(v, cutoff))


def _delivery_features(v: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Late-delivery share, mean delay and last-order-late flag.

    An order is *evaluable* at the cutoff when its delivery is known (``delivered_at`` known by
    the cutoff) or it is still undelivered (placed/shipped) after its promised date has passed,
    which counts as late. Delay is whole days after the promised date, 0 when on time.
    """
    promised = v["promised_delivery_date"].dt.normalize()
    delivered = v["delivered_at"].dt.normalize()
    pending = v["delivered_at"].isna() & v["status"].isin(["placed", "shipped"])
    as_of_day = cutoff.normalize()
    overdue = pending & (as_of_day > promised)
    delay = _days(delivered - promised).where(delivered.notna(), _days(as_of_day - promised))
    evaluable = promised.notna() & (delivered.notna() | overdue)
    delay = delay.clip(lower=0).where(evaluable)
    late = (delay > 0).astype(float).where(evaluable)
    by = v[KEY]
    out = pd.DataFrame({"late_share": late.groupby(by).mean()})
    out["mean_delay_days"] = delay.groupby(by).mean()
    # v is sorted by ordered_at within customer: the last row is the latest order.
    last_rows = v.groupby(KEY).tail(1).index
    out["last_order_late"] = pd.Series(late[last_rows].values, index=by[last_rows].values)
    return out


def _experience_features(data: LifecycleData, cutoff: pd.Timestamp, snap: pd.DataFrame):
    r = data.reviews[data.reviews["created_at"] <= cutoff]
    rg = r.groupby(KEY)["rating"]
    out = pd.DataFrame({"rating_mean": rg.mean(), "rating_min": rg.min()})
    out["n_reviews"] = rg.size().astype(float)

    s = data.surveys[data.surveys["responded_at"] <= cutoff]
    s = s.sort_values([KEY, "responded_at", "response_id"], kind="mergesort")
    latest = s.drop_duplicates(KEY, keep="last").set_index(KEY)["score"]
    out = out.join(pd.DataFrame({"nps_latest": latest}), how="outer")
    out["nps_promoter"] = (out["nps_latest"] >= 9).astype(float)
    out["nps_passive"] = out["nps_latest"].between(7, 8).astype(float)
    out["nps_detractor"] = (out["nps_latest"] <= 6).astype(float)

    c = data.checkouts[data.checkouts["started_at"] <= cutoff]
    abandoned = abandoned_checkouts(c, snap)
    recent = c["started_at"] > cutoff - 90 * DAY
    out = out.join(
        abandoned[recent].groupby(c.loc[recent, KEY]).sum().rename("abandoned_checkouts_90d"),
        how="outer",
    )
    # Browsing without buying after the last order (of any status) is a sign of life: a
    # customer who left stops visiting, one who stays keeps starting checkouts.
    last_order = snap.groupby(KEY)["ordered_at"].max()
    after = c["started_at"] > c[KEY].map(last_order)
    since = (after & abandoned).groupby(c[KEY]).sum().rename("abandoned_since_last_order")
    seen = _days(cutoff - c.groupby(KEY)["started_at"].max()).rename("days_since_checkout")
    # basket values, bought or not, say how much a customer tends to spend per order
    cart = c.groupby(KEY)["cart_value"].mean().rename("cart_value_mean")
    return out.join(since, how="outer").join(seen, how="outer").join(cart, how="outer")


def abandoned_checkouts(checkouts: pd.DataFrame, snap: pd.DataFrame) -> pd.Series:
    """Whether each checkout (of a :class:`LifecycleData`) was abandoned as known from ``snap``
    (:meth:`LifecycleData.snapshot` at the cutoff): not completed by an order known then. A
    checkout completed by an order not yet known at the cutoff was still abandoned then."""
    return ~checkouts[COMPLETED_ORDER_KEY].isin(snap[ORDER_KEY])


def _slug(name: object) -> str:
    text = "unknown" if name is None or pd.isna(name) else str(name)
    return re.sub(r"[^0-9a-z]+", "_", text.strip().lower()).strip("_") or "unknown"


def _customer_features(data: LifecycleData, cutoff: pd.Timestamp, index: pd.Index):
    cust = data.customers[~(data.customers["signed_up_at"] > cutoff)]
    cust = cust.drop_duplicates(KEY, keep="last").set_index(KEY)
    cust = cust.reindex(index)
    out = pd.DataFrame({"days_since_signup": _days(cutoff - cust["signed_up_at"])}, index=index)
    channels = cust["acquisition_channel"]
    slugs = {name: _slug(name) for name in channels.dropna().unique()}
    channel = channels.map(slugs).fillna("unknown")
    dummies = pd.get_dummies(channel, prefix="acq", dtype=float)
    return out.join(dummies.reindex(sorted(dummies.columns), axis=1))


def btyd_features(data: LifecycleData, cutoff: object, horizon_days: int = 90) -> pd.DataFrame:
    """BG/NBD outputs fitted on the orders known at ``cutoff`` (daily purchase periods).

    The RFM summary (:func:`ml.clv.rfm_summary`) is built from the point-in-time snapshot of
    non-cancelled orders, and :class:`ml.btyd.BetaGeoFitter` is fitted on it. Returns
    ``btyd_p_no_purchase`` (P(no purchase in the next ``horizon_days``)) and
    ``btyd_expected_purchases`` (expected purchases in that horizon), indexed by customer_id.
    Returns an empty frame when the BTYD modules are not available; NaN columns when the fit
    fails (with a ``RuntimeWarning``) or fewer than ``MIN_BTYD_CUSTOMERS`` customers have orders.
    """
    out = _btyd_by_key(data, to_timestamp(cutoff), horizon_days)
    return out.set_axis(data.customer_ids[out.index])


def _btyd_by_key(data: LifecycleData, cutoff: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """:func:`btyd_features` indexed by customer key."""
    try:
        from ml.btyd import BetaGeoFitter
        from ml.clv import rfm_summary
    except ImportError:
        return pd.DataFrame(index=pd.Index([], dtype=np.int64))
    columns = list(BTYD_COLUMNS)

    def fit(_) -> tuple[pd.DataFrame, BetaGeoFitter | None, str | None]:
        """(RFM summary by key, the fitted model or None, why the fit failed or None)."""
        _, v = _purchases(data, cutoff)
        customers = pd.Index(np.unique(v[KEY].to_numpy()))
        if len(customers) < MIN_BTYD_CUSTOMERS:
            return pd.DataFrame(index=customers), None, None
        rfm = rfm_summary(
            v, cutoff, customer_col=KEY, datetime_col="ordered_at", value_col="order_total"
        )
        rfm = rfm.set_index("customer_id").reindex(customers)
        try:
            return rfm, BetaGeoFitter().fit(rfm["frequency"], rfm["recency"], rfm["T"]), None
        except FIT_ERRORS as exc:
            return rfm, None, str(exc)

    # the fit does not depend on the horizon: the churn and CLV horizons share it
    rfm, bg, error = data.cached("btyd_features_fit", cutoff, fit)
    if bg is not None:
        args = (horizon_days, rfm["frequency"], rfm["recency"], rfm["T"])
        try:
            p0 = np.asarray(bg.probability_of_zero_purchases(*args), float)
            expected = np.asarray(bg.predict(*args), float)
            return pd.DataFrame({columns[0]: p0, columns[1]: expected}, index=rfm.index)
        except FIT_ERRORS as exc:
            error = str(exc)
    if error is not None:
        warnings.warn(f"BG/NBD fit failed at {cutoff}: {error}", RuntimeWarning, stacklevel=3)
    return pd.DataFrame(np.nan, index=rfm.index, columns=columns)


def with_btyd_horizon(
    features: pd.DataFrame, data: LifecycleData, cutoff: object, horizon_days: int
) -> pd.DataFrame:
    """``features`` (:func:`build_features` at ``cutoff``, any horizon) with the BTYD columns
    recomputed for ``horizon_days``: the only horizon-dependent features, so one feature
    build serves the churn (90 days) and CLV (365 days) models."""
    btyd = btyd_features(data, cutoff, horizon_days)
    if not len(btyd.columns):
        return features
    out = features.drop(columns=[c for c in BTYD_COLUMNS if c in features])
    return out.join(btyd.reindex(out.index).astype(float))


def build_features(data: LifecycleData, cutoff: object, horizon_days: int = 90) -> pd.DataFrame:
    """Point-in-time features, one row per customer with a non-cancelled order by ``cutoff``.

    Parameters
    ----------
    data : LifecycleData
        All known data; rows after ``cutoff`` are ignored.
    cutoff : timestamp-like
        The as-of instant (inclusive).
    horizon_days : int
        Horizon of the BTYD features (P(no purchase), expected purchases).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (sorted), float columns; NaN where undefined (e.g. gaps of a
        one-time buyer). ``acq_*`` one-hot columns depend on the channels present.
    """
    cutoff = to_timestamp(cutoff)
    snap, valid = _purchases(data, cutoff)
    feats = _order_features(snap, valid, cutoff)
    exp = _experience_features(data, cutoff, snap)
    feats = feats.join(exp.reindex(feats.index))
    for col in (
        "n_reviews",
        "abandoned_checkouts_90d",
        "abandoned_since_last_order",
        "nps_promoter",
        "nps_passive",
        "nps_detractor",
    ):
        feats[col] = feats[col].fillna(0.0)
    feats = feats.join(_customer_features(data, cutoff, feats.index))
    btyd = _btyd_by_key(data, cutoff, horizon_days)
    feats = feats.join(btyd.reindex(feats.index)) if len(btyd.columns) else feats
    return feats.astype(float).set_axis(data.customer_ids[feats.index])


def churn_labels(
    data: LifecycleData, cutoff: object, horizon_days: int = 90, as_of: object | None = None
) -> pd.Series:
    """1 if the customer placed no non-cancelled order in ``(cutoff, cutoff + horizon]``.

    Population: the customers of :func:`build_features` at ``cutoff``. Orders in the window
    are judged by their latest version known at ``as_of`` (default: ``data.end``). Raises
    ``ValueError`` if the label has not matured (``cutoff + horizon > as_of``).
    """
    cutoff = to_timestamp(cutoff)
    as_of = data.end if as_of is None else to_timestamp(as_of)
    end = cutoff + horizon_days * DAY
    if end > as_of:
        raise ValueError(f"label at {cutoff} not matured: {end} > as_of {as_of}")
    _, valid = _purchases(data, cutoff)
    population = np.unique(valid[KEY].to_numpy())
    _, later = _purchases(data, as_of)
    window = later[(later["ordered_at"] > cutoff) & (later["ordered_at"] <= end)]
    churned = ~np.isin(population, window[KEY].to_numpy())
    return pd.Series(churned.astype(int), index=data.customer_ids[population], name="churned")
