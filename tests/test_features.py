"""Point-in-time features and churn labels (ml.data, ml.features)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.data import LifecycleData, order_snapshot
from ml.features import build_features, churn_labels, with_btyd_horizon
from ml.grouping import key_groupby

T0 = pd.Timestamp("2024-01-01")
CHANNELS = ("organic", "paid_search", "social", "referral")
ORDER_COLS = [
    *("order_id", "customer_id", "ordered_at", "order_total", "discount_total"),
    *("shipping_total", "item_count", "channel", "promised_delivery_date"),
    *("status", "delivered_at", "updated_at"),
]
CUSTOMER_COLS = ["customer_id", "signed_up_at", "country", "acquisition_channel"]
REVIEW_COLS = ["review_id", "customer_id", "order_id", "rating", "created_at"]
CHECKOUT_COLS = ["checkout_id", "customer_id", "started_at", "cart_value", "completed_order_id"]


def day(d: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=d)


def simulate_lifecycle(n_customers: int = 1500, n_days: int = 500, seed: int = 0):
    """Poisson purchases with per-purchase dropout, more likely after a late delivery.

    Returns (LifecycleData, as_of) with as_of = the end of the simulated period.
    """
    rng = np.random.default_rng(seed)
    orders, reviews, surveys, checkouts, customers = [], [], [], [], []
    n_orders = 0
    for i in range(n_customers):
        cid = f"C{i:05d}"
        signup = rng.uniform(0, 380)
        channel = CHANNELS[rng.integers(len(CHANNELS))]
        customers.append((cid, day(signup), "DE", channel))
        rate = rng.gamma(2.0, 1 / 60) * (1.5 if channel == "referral" else 1.0)
        p_drop = rng.beta(1.0, 12.0)
        t = signup + rng.exponential(7)
        while t < n_days:
            n_orders += 1
            oid = f"O{n_orders:06d}"
            total, discount = rng.gamma(2.0, 30.0), 5.0 * (rng.random() < 0.3)
            late = rng.random() < 0.15
            delivered = t + (rng.uniform(1, 4) if not late else rng.uniform(6, 14))
            base = (oid, cid, day(t), total, discount, 4.9, 2, "web", day(t + 5).normalize())
            orders.append((*base, "placed", pd.NaT, day(t)))
            if rng.random() < 0.05:
                orders.append((*base, "cancelled", pd.NaT, day(t + 0.3)))
                t += rng.exponential(1 / rate)
                continue
            orders.append((*base, "shipped", pd.NaT, day(t + 0.8)))
            orders.append((*base, "delivered", day(delivered), day(delivered)))
            returned = rng.random() < 0.06
            if returned:
                orders.append((*base, "returned", day(delivered), day(delivered + 7)))
            if rng.random() < 0.3:
                rating = int(np.clip(5 - 2 * late - rng.integers(0, 2), 1, 5))
                reviews.append((f"R{oid}", cid, oid, rating, day(delivered + 2)))
            if rng.random() < 0.2:
                score = int(np.clip(9 - 4 * late + rng.integers(-2, 2), 0, 10))
                surveys.append((f"S{oid}", cid, "nps_post_purchase", score, day(delivered + 3)))
            if rng.random() < 0.3:
                checkouts.append((f"K{oid}", cid, day(t - 0.01), total, oid))
            if rng.random() < p_drop + 0.35 * late + 0.1 * returned:
                for _ in range(rng.poisson(1.0)):  # abandoned carts on the way out
                    checkouts.append((f"A{oid}{_}", cid, day(t + rng.uniform(5, 60)), 50.0, None))
                break
            t += rng.exponential(1 / rate)
    cols = LifecycleData.empty_frames()
    data = LifecycleData(
        orders=pd.DataFrame(orders, columns=ORDER_COLS),
        reviews=pd.DataFrame(reviews, columns=REVIEW_COLS),
        surveys=pd.DataFrame(surveys, columns=list(cols["surveys"].columns)),
        checkouts=pd.DataFrame(checkouts, columns=CHECKOUT_COLS),
        customers=pd.DataFrame(customers, columns=CUSTOMER_COLS),
    )
    return data, day(n_days)


@pytest.fixture(scope="module")
def sim():
    return simulate_lifecycle(n_customers=400, n_days=400, seed=1)


def test_empty_optional_tables_and_validation():
    orders = pd.DataFrame(
        {
            "order_id": [1],
            "customer_id": [7],
            "ordered_at": ["2024-01-01T10:00:00+01:00"],
            "status": ["placed"],
            "order_total": [10],
        }
    )
    data = LifecycleData(orders=orders)
    assert data.orders.loc[0, "customer_id"] == "7"
    assert data.orders.loc[0, "updated_at"] == pd.Timestamp("2024-01-01 09:00")
    feats = build_features(data, "2024-01-02")
    assert list(feats.index) == ["7"] and feats.loc["7", "acq_unknown"] == 1.0
    assert feats.loc["7", "abandoned_checkouts_90d"] == 0.0
    with pytest.raises(ValueError, match="missing required"):
        LifecycleData(orders=orders.drop(columns="status"))
    with pytest.raises(ValueError, match="status"):
        LifecycleData(orders=orders.assign(status="lost"))


def test_leakage_future_changes_do_not_move_features(sim):
    data, _ = sim
    cutoff = day(250)
    before = build_features(data, cutoff)
    rng = np.random.default_rng(5)

    o = data.orders.copy()
    later = o["updated_at"] > cutoff
    o.loc[later, "status"] = rng.choice(["cancelled", "returned"], later.sum())
    o.loc[later, "order_total"] *= 3
    o.loc[later, "delivered_at"] = o.loc[later, "updated_at"]
    # Brand-new orders after the cutoff, by existing and new customers.
    who = list(rng.choice(before.index, 50)) + [f"NEW{i}" for i in range(20)]
    new = pd.DataFrame(
        {
            "order_id": [f"X{i}" for i in range(70)],
            "customer_id": who,
            "ordered_at": [cutoff + pd.Timedelta(hours=1 + i) for i in range(70)],
            "status": "delivered",
            "order_total": 99.0,
            "updated_at": [cutoff + pd.Timedelta(hours=2 + i) for i in range(70)],
        }
    )
    # A checkout started before the cutoff, completed by an order placed after it.
    ck = data.checkouts.copy()
    abandoned_before = ck[(ck["started_at"] <= cutoff) & ck["completed_order_id"].isna()]
    ck.loc[abandoned_before.index[:10], "completed_order_id"] = "X0"
    # Checkouts started after the cutoff (abandoned, big baskets) by customers with orders.
    future = pd.DataFrame(
        {
            "checkout_id": [f"KX{i}" for i in range(30)],
            "customer_id": list(rng.choice(before.index, 30)),
            "started_at": [cutoff + pd.Timedelta(minutes=5 + i) for i in range(30)],
            "cart_value": 5000.0,
            "completed_order_id": None,
        }
    )
    ck = pd.concat([ck, future.reindex(columns=ck.columns)], ignore_index=True)
    rv = pd.concat(
        [
            data.reviews,
            pd.DataFrame(
                {
                    "review_id": ["RX"],
                    "customer_id": [who[0]],
                    "rating": [1],
                    "created_at": [cutoff + pd.Timedelta(seconds=1)],
                }
            ),
        ]
    )
    sv = data.surveys.copy()
    sv.loc[sv["responded_at"] > cutoff, "score"] = 0
    cu = pd.concat(
        [
            data.customers,
            pd.DataFrame(
                {"customer_id": ["NEW0"], "signed_up_at": [day(260)], "acquisition_channel": ["tv"]}
            ),
        ]
    )
    altered = LifecycleData(pd.concat([o, new]), rv, sv, ck, cu)
    after = build_features(altered, cutoff)
    pd.testing.assert_frame_equal(before, after)
    assert not before.equals(build_features(altered, day(300)).reindex_like(before))


def _order(oid, cid, t, status, upd, total=10.0, **kw):
    return {
        "order_id": oid,
        "customer_id": cid,
        "ordered_at": day(t),
        "status": status,
        "order_total": total,
        "updated_at": day(upd),
        **kw,
    }


def test_features_on_hand_made_rows():
    prom = {"promised_delivery_date": day(5).normalize()}
    rows = [
        _order("a1", "A", 0, "placed", 0, **prom),  # one-time buyer, delivered day 3
        _order("a1", "A", 0, "delivered", 3, delivered_at=day(3), **prom),
        _order("b1", "B", 1, "placed", 1),  # cancelled-only customer
        _order("b1", "B", 1, "cancelled", 1.5),
        _order("c1", "C", 0, "delivered", 2, total=20.0, discount_total=5.0),
        _order("c2", "C", 10, "returned", 20, total=40.0),
        _order("c3", "C", 30, "cancelled", 30.2),
        _order("c4", "C", 40, "placed", 40, total=60.0, **{"promised_delivery_date": day(44)}),
        _order("c4", "C", 40, "returned", 70, total=60.0),  # return after the cutoff
        _order("d1", "D", 45, "placed", 45, **{"promised_delivery_date": day(55)}),
    ]
    checkouts = pd.DataFrame(
        {
            "checkout_id": ["k1", "k2", "k3"],
            "customer_id": ["C", "C", "A"],
            "started_at": [day(39), day(45), day(1)],
            "cart_value": 1.0,
            "completed_order_id": ["c4", "zz_later", None],
        }
    )
    surveys = pd.DataFrame(
        {
            "response_id": ["s1", "s2", "s3"],
            "customer_id": ["C", "C", "C"],
            "survey": "nps",
            "score": [10, 3, 9],
            "responded_at": [day(5), day(20), day(60)],
        }
    )
    reviews = pd.DataFrame(
        {
            "review_id": ["r1", "r2"],
            "customer_id": ["C", "C"],
            "rating": [5, 2],
            "created_at": [day(3), day(21)],
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "C"],
            "signed_up_at": [day(-10), day(-1)],
            "acquisition_channel": ["Paid Search", None],
        }
    )
    data = LifecycleData(pd.DataFrame(rows), reviews, surveys, checkouts, customers)
    f = build_features(data, day(50))

    assert list(f.index) == ["A", "C", "D"]  # B only has a cancelled order
    a, c, d = f.loc["A"], f.loc["C"], f.loc["D"]
    assert (a["frequency"], a["recency_days"], a["tenure_days"]) == (1, 50, 50)
    assert np.isnan(a["gap_mean"]) and np.isnan(a["recency_gap_ratio"])
    assert a["late_share"] == 0 and a["days_since_signup"] == 60 and a["acq_paid_search"] == 1
    assert a["abandoned_checkouts_90d"] == 1 and np.isnan(a["nps_latest"])

    assert c["frequency"] == 3 and c["monetary_total"] == 120 and c["monetary_mean"] == 40
    assert c["return_share"] == pytest.approx(1 / 3)  # c4's return is not known yet
    assert c["cancel_share"] == pytest.approx(1 / 4)
    assert (c["gap_mean"], c["gap_median"], c["last_gap_ratio"]) == (20, 20, 1.5)
    assert c["recency_gap_ratio"] == pytest.approx(10 / 20)
    assert c["discounted_order_share"] == pytest.approx(1 / 3)
    assert c["discount_rate"] == pytest.approx(5 / 125)
    # c4 undelivered 6 days after its promised date: late; c1/c2 have no promise.
    assert (c["late_share"], c["mean_delay_days"], c["last_order_late"]) == (1, 6, 1)
    assert c["nps_latest"] == 3 and c["nps_detractor"] == 1 and c["nps_promoter"] == 0
    assert (c["rating_mean"], c["rating_min"], c["n_reviews"]) == (3.5, 2, 2)
    assert c["abandoned_checkouts_90d"] == 1  # k2's order is unknown at the cutoff
    assert c["acq_unknown"] == 1 and c["orders_30d"] == 1 and c["orders_90d"] == 3
    # D's delivery is not due yet: not evaluable.
    assert np.isnan(d["late_share"]) and np.isnan(d["last_order_late"])
    assert np.isnan(d["days_since_signup"]) and d["acq_unknown"] == 1

    later = build_features(data, day(80)).loc["C"]
    assert later["return_share"] == pytest.approx(2 / 3)


def test_order_snapshot_takes_latest_known_version():
    data = LifecycleData(
        pd.DataFrame([_order("x", "X", 0, "placed", 0), _order("x", "X", 0, "delivered", 4)])
    )
    assert order_snapshot(data.orders, day(2))["status"].tolist() == ["placed"]
    assert order_snapshot(data.orders, day(4))["status"].tolist() == ["delivered"]


def test_churn_labels_on_hand_made_rows():
    rows = [
        _order("p", "P", 50, "delivered", 52),  # stays: order inside the window
        _order("p2", "P", 150, "placed", 150),
        _order("q", "Q", 50, "placed", 50),  # window edge (cutoff + 90) counts
        _order("q2", "Q", 190, "placed", 190),
        _order("r", "R", 50, "placed", 50),  # first order after the window: churned
        _order("r2", "R", 191, "placed", 191),
        _order("s", "S", 50, "placed", 50),  # order in the window cancelled later
        _order("s2", "S", 120, "placed", 120),
        _order("s2", "S", 120, "cancelled", 250),
        _order("t", "T", 100, "placed", 100),  # at the cutoff: belongs to the population
        _order("u", "U", 101, "placed", 101),  # first order after the cutoff: not in it
        _order("v", "V", 10, "placed", 10),  # cancelled after the cutoff: still in it
        _order("v", "V", 10, "cancelled", 150),
    ]
    data = LifecycleData(pd.DataFrame(rows))
    y = churn_labels(data, day(100), 90)
    assert y.to_dict() == {"P": 0, "Q": 0, "R": 1, "S": 1, "T": 1, "V": 1}
    assert churn_labels(data, day(100), 90, as_of=day(200))["S"] == 0  # cancel not known yet
    with pytest.raises(ValueError, match="not matured"):
        churn_labels(data, day(100), 90, as_of=day(189))


def test_btyd_features_present_when_module_available(sim):
    if not hasattr(pytest.importorskip("ml.btyd"), "BetaGeoFitter"):
        pytest.skip("ml.btyd.BetaGeoFitter is not available yet")
    data, _ = sim
    f = build_features(data, day(300))
    p0 = f["btyd_p_no_purchase"]
    assert p0.between(0, 1).all()
    y = churn_labels(data, day(300), 90)
    assert p0[y == 1].mean() > p0[y == 0].mean()


def test_one_feature_build_serves_both_horizons(sim):
    """The nightly scoring builds features once (churn horizon) and only recomputes the
    BTYD columns for the CLV horizon: the result equals a build for that horizon."""
    data, _ = sim
    short = build_features(data, day(300), 90)
    long = build_features(data, day(300), 365)
    assert not np.allclose(short["btyd_expected_purchases"], long["btyd_expected_purchases"])
    shared = with_btyd_horizon(short, data, day(300), 365)
    pd.testing.assert_frame_equal(shared[long.columns], long)


def test_text_columns_share_one_object_per_value(sim):
    """Readers return one string object per row; LifecycleData keeps one per distinct value
    (the same strings, a fraction of the memory at millions of rows)."""
    data, _ = sim
    orders = data.orders
    for col in ("status", "customer_id", "order_id"):
        assert len({id(v) for v in orders[col]}) == orders[col].nunique()
    copy = LifecycleData(orders=orders.assign(channel=[f"{c}" for c in orders["channel"]]))
    assert copy.orders["channel"].tolist() == orders["channel"].tolist()
    assert len({id(v) for v in copy.orders["channel"]}) == orders["channel"].nunique()


def test_integer_keys_order_like_the_ids_and_are_shared_across_tables():
    orders = pd.DataFrame(
        {
            "order_id": ["o3", "o1", "o2"],
            "customer_id": ["c2", "c10", "c2"],
            "ordered_at": ["2024-01-01"] * 3,
            "status": ["placed"] * 3,
            "order_total": [1.0, 2.0, 3.0],
        }
    )
    checkouts = pd.DataFrame(
        {
            "checkout_id": ["k1", "k2", "k3"],
            "customer_id": ["c0", "c10", "c2"],
            "started_at": ["2024-01-01"] * 3,
            "cart_value": [1.0, 2.0, 3.0],
            "completed_order_id": ["o2", None, "o9"],
        }
    )
    data = LifecycleData(orders=orders, checkouts=checkouts)
    assert list(data.customer_ids) == ["c0", "c10", "c2"]  # string order
    for frame in (data.orders, data.checkouts):
        assert list(data.customer_ids[frame["customer_key"]]) == list(frame["customer_id"])
    # order keys: one space for order_id and completed_order_id, -1 for a null id
    assert list(data.orders["order_key"]) == [2, 0, 1]
    assert list(data.checkouts["completed_order_key"]) == [1, -1, 3]


def test_categorical_text_as_the_arrow_loader_gives_changes_nothing():
    data, _ = simulate_lifecycle(n_customers=200, n_days=200, seed=4)
    cutoff = day(150)
    as_categories = {
        table: getattr(data, table).astype(
            {
                c: "category"
                for c in ("customer_id", "order_id", "status")
                if c in getattr(data, table)
            }
        )
        for table in ("orders", "reviews", "surveys", "checkouts", "customers")
    }
    again = LifecycleData(**as_categories)
    assert again.orders["customer_id"].dtype == object
    pd.testing.assert_frame_equal(build_features(again, cutoff), build_features(data, cutoff))


@pytest.mark.parametrize("low", [0, -3])  # dense customer keys, and keys pandas factorizes
def test_key_groupby_groups_like_pandas(low):
    rng = np.random.default_rng(6)
    keys = pd.Series(rng.integers(low, 50, 2000) * 3)
    frame = pd.DataFrame({"x": rng.random(2000), "y": rng.random(2000) > 0.5})
    g, index = key_groupby(frame, keys)
    got = pd.DataFrame({"x": g["x"].mean(), "y": g["y"].sum(), "n": g.size()}).set_axis(index)
    ref = frame.groupby(keys)
    expected = pd.DataFrame({"x": ref["x"].mean(), "y": ref["y"].sum(), "n": ref.size()})
    pd.testing.assert_frame_equal(got, expected)


def test_latest_survey_breaks_ties_by_response_id_with_or_without_missing_ids():
    from ml.data import CUSTOMER_KEY
    from ml.features import _latest_surveys

    t = pd.Timestamp("2024-03-01")
    surveys = pd.DataFrame(
        {
            CUSTOMER_KEY: [0, 0, 0, 1, 1],
            "responded_at": [t, t, t - pd.Timedelta(days=1), t, t],
            "response_id": ["b", "a", "z", "c", "d"],
            "score": [9.0, 1.0, 5.0, 3.0, 4.0],
        }
    )
    # the later answer wins; on a tie, the larger id (np.lexsort path)
    assert _latest_surveys(surveys).to_dict() == {0: 9.0, 1: 4.0}
    # a missing id (the sort_values path) sorts last among the tied answers, so it wins
    with_missing = surveys.assign(response_id=["b", "a", "z", None, "d"])
    assert _latest_surveys(with_missing).to_dict() == {0: 9.0, 1: 3.0}
