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
from ml.grouping import key_groupby

DAY = pd.Timedelta(days=1)
KEY = CUSTOMER_KEY  # rows are grouped by integer customer keys (see LifecycleData)
BTYD_COLUMNS = ("btyd_p_no_purchase", "btyd_expected_purchases")  # horizon-dependent
WINDOWS = (30, 90, 180, 365)
MIN_BTYD_CUSTOMERS = 20  # below this, BTYD columns are NaN (no fit)
FIT_ERRORS = (ValueError, RuntimeError, ArithmeticError, np.linalg.LinAlgError)


def _days(delta: pd.Series) -> pd.Series:
    return delta / DAY


# columns of the order snapshot that the features read (ids are not carried along)
_ORDER_COLUMNS = (
    KEY,
    ORDER_KEY,
    "ordered_at",
    "status",
    "order_total",
    "discount_total",
    "promised_delivery_date",
    "delivered_at",
)


def _purchases(data: LifecycleData, cutoff: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(snapshot of all orders known at cutoff, its non-cancelled orders sorted by customer
    key, time and order key); cached in ``data`` (read-only)."""
    snap = data.snapshot(cutoff)

    def valid(_) -> pd.DataFrame:
        v = snap.loc[snap["status"] != "cancelled", list(_ORDER_COLUMNS)]
        # integer sort keys: np.lexsort instead of sort_values, which factorizes every key
        keys = (v[ORDER_KEY].to_numpy(), v["ordered_at"].to_numpy(), v[KEY].to_numpy())
        return v.take(np.lexsort(keys)).reset_index(drop=True)

    return snap, data.cached("purchases", cutoff, valid)


def _snapshot_features(snap: pd.DataFrame) -> pd.DataFrame:
    """Per customer key, over all orders known at the cutoff (cancelled ones too): the time
    of the last order and the share of cancelled orders (one grouping of the snapshot)."""
    # assign adds columns without copying the others (a DataFrame of a dict consolidates them)
    rows = snap[["ordered_at"]].assign(cancelled=snap["status"] == "cancelled")
    g, keys = key_groupby(rows, snap[KEY])  # the snapshot is in order key order
    out = pd.DataFrame(
        {"last_order_at": g["ordered_at"].max(), "cancel_share": g["cancelled"].mean()}
    )
    return out.set_axis(keys)


def _order_features(v: pd.DataFrame, by_customer: pd.DataFrame, cutoff: pd.Timestamp):
    """Order features of :func:`build_features` from ``v`` (:func:`_purchases`, sorted by
    customer) and ``by_customer`` (:func:`_snapshot_features`).

    Every per-row quantity is a column of one frame grouped once: each ``x.groupby(series)``
    would factorize the customer keys again.
    """
    at, key = v["ordered_at"], v[KEY]
    same_customer = key.eq(key.shift())  # v is sorted by customer, then time
    disc = v["discount_total"].fillna(0.0)
    rows = v[[KEY, "ordered_at", "order_total"]].assign(
        gap=_days(at.diff()).where(same_customer),
        **{f"orders_{w}d": at > cutoff - w * DAY for w in WINDOWS},
        spend_90d=v["order_total"].where(at > cutoff - 90 * DAY, 0.0),
        spend_prior_90d=v["order_total"].where(
            (at <= cutoff - 90 * DAY) & (at > cutoff - 180 * DAY), 0.0
        ),
        discount=disc,
        discounted=disc > 0,
        returned=v["status"] == "returned",
        **_delivery_rows(v, cutoff),
    )
    g = rows.groupby(KEY, sort=True)
    f = pd.DataFrame(index=g.size().index)
    f["recency_days"] = _days(cutoff - g["ordered_at"].max())
    # a cancelled order is a visit too (and, like any order, a moment a customer may leave)
    f["recency_any_order_days"] = _days(cutoff - by_customer["last_order_at"])
    f["frequency"] = g.size().astype(float)
    f["monetary_total"] = g["order_total"].sum()
    f["monetary_mean"] = g["order_total"].mean()
    f["tenure_days"] = _days(cutoff - g["ordered_at"].min())

    gap_mean = g["gap"].mean()
    f["gap_mean"] = gap_mean
    f["gap_median"] = g["gap"].median()
    f["recency_gap_ratio"] = f["recency_days"] / gap_mean.where(gap_mean > 0)
    f["last_gap_ratio"] = g["gap"].last() / gap_mean.where(gap_mean > 0)

    for w in WINDOWS:
        f[f"orders_{w}d"] = g[f"orders_{w}d"].sum().astype(float)
    f["spend_90d"] = g["spend_90d"].sum()
    f["spend_prior_90d"] = g["spend_prior_90d"].sum()
    f["spend_trend"] = np.log1p(f["spend_90d"]) - np.log1p(f["spend_prior_90d"])

    f["discounted_order_share"] = g["discounted"].mean()
    gross = f["monetary_total"] + g["discount"].sum()
    f["discount_rate"] = (g["discount"].sum() / gross.where(gross > 0)).fillna(0)
    f["return_share"] = g["returned"].mean()
    f["cancel_share"] = by_customer["cancel_share"].reindex(f.index)
    f["late_share"] = g["late"].mean()
    f["mean_delay_days"] = g["delay"].mean()
    last = key.ne(key.shift(-1)).to_numpy()  # the last row of a customer is the latest order
    f["last_order_late"] = pd.Series(rows["late"].to_numpy()[last], index=key.to_numpy()[last])
    return f


def _delivery_rows(v: pd.DataFrame, cutoff: pd.Timestamp) -> dict[str, pd.Series]:
    """Per order: ``late`` (1/0) and ``delay`` (days), NaN where not evaluable.

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
    return {"late": (delay > 0).astype(float).where(evaluable), "delay": delay}


def _latest_surveys(surveys: pd.DataFrame) -> pd.Series:
    """Score of each customer's latest survey answer (ties: the largest response id)."""
    ids = surveys["response_id"]
    if ids.isna().any():  # np.lexsort cannot order missing ids: pandas puts them last
        s = surveys.sort_values([KEY, "responded_at", "response_id"], kind="mergesort")
    else:  # np.lexsort compares the id strings directly (sort_values factorizes them first)
        keys = (ids.to_numpy(), surveys["responded_at"].to_numpy(), surveys[KEY].to_numpy())
        s = surveys.take(np.lexsort(keys))
    return s.drop_duplicates(KEY, keep="last").set_index(KEY)["score"]


def _experience_features(
    data: LifecycleData, cutoff: pd.Timestamp, snap: pd.DataFrame, by_customer: pd.DataFrame
) -> pd.DataFrame:
    r = data.reviews[data.reviews["created_at"] <= cutoff]
    rg = r.groupby(KEY)["rating"]
    out = pd.DataFrame({"rating_mean": rg.mean(), "rating_min": rg.min()})
    out["n_reviews"] = rg.size().astype(float)

    columns = [KEY, "responded_at", "response_id", "score"]
    s = data.surveys.loc[data.surveys["responded_at"] <= cutoff, columns]
    out = out.join(pd.DataFrame({"nps_latest": _latest_surveys(s)}), how="outer")
    out["nps_promoter"] = (out["nps_latest"] >= 9).astype(float)
    out["nps_passive"] = out["nps_latest"].between(7, 8).astype(float)
    out["nps_detractor"] = (out["nps_latest"] <= 6).astype(float)

    c = data.checkouts
    c = c.loc[c["started_at"] <= cutoff, [KEY, "started_at", "cart_value", COMPLETED_ORDER_KEY]]
    abandoned = abandoned_checkouts(c, snap)
    # Browsing without buying after the last order (of any status) is a sign of life: a
    # customer who left stops visiting, one who stays keeps starting checkouts.
    after = c["started_at"] > c[KEY].map(by_customer["last_order_at"])
    rows = c[["started_at", "cart_value"]].assign(
        recent=abandoned & (c["started_at"] > cutoff - 90 * DAY), since=after & abandoned
    )
    g, keys = key_groupby(rows, c[KEY])  # one grouping of the 4M checkouts for all columns
    checkouts = pd.DataFrame(
        {
            # counted over every checkout: 0 (not NaN) for a customer without recent ones
            "abandoned_checkouts_90d": g["recent"].sum(),
            "abandoned_since_last_order": g["since"].sum(),
            "days_since_checkout": _days(cutoff - g["started_at"].max()),
            # basket values, bought or not, say how much a customer tends to spend per order
            "cart_value_mean": g["cart_value"].mean(),
        }
    ).set_axis(keys)
    return out.join(checkouts, how="outer")


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
        customers = pd.Index(v[KEY].unique())  # v is sorted by key: in order of appearance
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
    by_customer = _snapshot_features(snap)
    feats = _order_features(valid, by_customer, cutoff)
    exp = _experience_features(data, cutoff, snap, by_customer)
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
