"""One batch of orders: value, fulfilment timeline, CDC versions, reviews and NPS answers.

All functions are pure: they take a random generator and arrays, and return dicts of arrays.
Days are integer day indexes from the simulation start; times are epoch seconds (UTC).
"""

from __future__ import annotations

import numpy as np

from simulator.config import SimulatorConfig

DAY = 86_400
STATUS_PLACED, STATUS_SHIPPED, STATUS_DELIVERED, STATUS_CANCELLED, STATUS_RETURNED = range(5)
DISCOUNT_RATES = np.array([0.05, 0.10, 0.15, 0.20])


def clock(
    rng: np.random.Generator, start_sec: int, days: np.ndarray, h0: int, h1: int
) -> np.ndarray:
    """Random epoch second between ``h0``:00 and ``h1``:00 UTC on each given day."""
    return start_sec + days * DAY + rng.integers(h0 * 3600, h1 * 3600, size=days.shape[0])


def draw_orders(
    rng: np.random.Generator,
    config: SimulatorConfig,
    day: int,
    ordered_sec: np.ndarray,
    p: np.ndarray,
    nu: np.ndarray,
    season: float,
    start_sec: int,
) -> dict[str, np.ndarray]:
    """Draw everything about ``len(p)`` orders placed on ``day``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    config : SimulatorConfig
        Rates of cancellation, lateness, returns, discounts.
    day : int
        Day index of the order.
    ordered_sec : numpy.ndarray
        Epoch second of each order.
    p, nu : numpy.ndarray
        The customers' dropout probability and Gamma-Gamma spend rate.
    season : float
        Spend multiplier of the day.
    start_sec : int
        Epoch second of the simulation start.

    Returns
    -------
    dict of numpy.ndarray
        Order attributes, day indexes of every status change, ``late_days``, ``dropout``.
    """
    m = p.shape[0]
    u = rng.random((m, 6))
    cancel = u[:, 0] < config.cancel_rate
    late = ~cancel & (u[:, 1] < config.late_share)
    drop_p = np.where(late, np.minimum(1.0, config.late_dropout_multiplier * p), p)
    total = np.round(rng.gamma(config.spend_shape, 1.0 / nu) * season, 2)
    paid_shipping = (total < config.free_shipping_threshold) & (total > 2 * config.shipping_fee)
    shipping = np.where(paid_shipping, config.shipping_fee, 0.0)
    rate = DISCOUNT_RATES[rng.integers(0, len(DISCOUNT_RATES), size=m)]
    has_discount = u[:, 3] < config.discount_share
    discount = np.where(has_discount, np.round((total - shipping) * rate / (1 - rate), 2), 0.0)
    merchandise = np.round(total - shipping + discount, 2)

    promised = day + rng.integers(3, 8, size=m)
    ship_day = day + rng.integers(1, 3, size=m)
    late_days = np.where(late, rng.integers(1, 11, size=m), 0)
    on_time_day = np.maximum(ship_day + 1, promised - rng.integers(0, 3, size=m))
    deliver_day = np.where(late, promised + late_days, on_time_day)
    return_p = np.where(late, config.return_rate_late, config.return_rate)
    returned = ~cancel & (u[:, 5] < return_p)
    return_day = deliver_day + rng.integers(3, 22, size=m)
    cancel_day = day + rng.integers(1, 3, size=m)
    return {
        "ordered_sec": ordered_sec,
        "order_total": total,
        "discount_total": discount,
        "shipping_total": shipping,
        "merchandise": merchandise,
        "item_count": 1 + rng.poisson(merchandise / 45.0),
        "is_app": u[:, 4] < config.app_share,
        "promised_day": promised,
        "cancelled": cancel,
        "late": late,
        "late_days": late_days,
        "returned": returned,
        "dropout": u[:, 2] < drop_p,
        "cancel_day": cancel_day,
        "cancel_sec": clock(rng, start_sec, cancel_day, 7, 22),
        "ship_day": ship_day,
        "ship_sec": clock(rng, start_sec, ship_day, 6, 22),
        "deliver_day": deliver_day,
        "deliver_sec": clock(rng, start_sec, deliver_day, 8, 21),
        "return_day": return_day,
        "return_sec": clock(rng, start_sec, return_day, 0, 24),
    }


def order_versions(o: dict[str, np.ndarray], day: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """CDC versions of a batch: placed, then cancelled or shipped -> delivered (-> returned).

    Returns
    -------
    tuple
        Emit day per version and the version columns (``pos`` = row in the batch, ``status``
        code, ``delivered_sec`` (-1 = null), ``updated_sec``).
    """
    n = o["ordered_sec"].shape[0]
    allrows = np.arange(n)
    canc = np.flatnonzero(o["cancelled"])
    kept = np.flatnonzero(~o["cancelled"])
    ret = np.flatnonzero(o["returned"])
    pos = np.concatenate([allrows, canc, kept, kept, ret])
    status = np.concatenate(
        [
            np.full(n, STATUS_PLACED),
            np.full(canc.size, STATUS_CANCELLED),
            np.full(kept.size, STATUS_SHIPPED),
            np.full(kept.size, STATUS_DELIVERED),
            np.full(ret.size, STATUS_RETURNED),
        ]
    )
    emit = np.concatenate(
        [
            np.full(n, day),
            o["cancel_day"][canc],
            o["ship_day"][kept],
            o["deliver_day"][kept],
            o["return_day"][ret],
        ]
    )
    updated = np.concatenate(
        [
            o["ordered_sec"],
            o["cancel_sec"][canc],
            o["ship_sec"][kept],
            o["deliver_sec"][kept],
            o["return_sec"][ret],
        ]
    )
    delivered = np.where(status >= STATUS_DELIVERED, o["deliver_sec"][pos], -1)
    delivered[status == STATUS_CANCELLED] = -1
    return emit, {"pos": pos, "status": status, "delivered_sec": delivered, "updated_sec": updated}


def draw_feedback(
    rng: np.random.Generator, config: SimulatorConfig, o: dict[str, np.ndarray], p: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """Which delivered orders get a review / NPS answer, with rating, score and day.

    Ratings and scores fall with a late delivery, a return and the customer's latent dropout
    propensity ``p`` (unhappy customers both leave and complain).
    """
    m = p.shape[0]
    delivered = ~o["cancelled"]
    late = o["late"].astype(float)
    ret = o["returned"].astype(float)
    review_p = np.where(o["late"], config.review_rate_late, config.review_rate)
    has_review = delivered & (rng.random(m) < review_p)
    has_survey = delivered & (rng.random(m) < config.survey_rate)
    mood = -(p - 0.2)
    mu_rating = 4.4 - 1.8 * late - 0.08 * o["late_days"] - 0.6 * ret + 3.0 * mood
    rating = np.clip(np.rint(mu_rating + rng.normal(0.0, 0.9, size=m)), 1, 5).astype(np.int64)
    mu_score = 8.6 - 3.0 * late - 0.15 * o["late_days"] - 1.5 * ret + 6.0 * mood
    score = np.clip(np.rint(mu_score + rng.normal(0.0, 1.6, size=m)), 0, 10).astype(np.int64)
    review_day = o["deliver_day"] + rng.integers(1, 11, size=m)
    survey_day = o["deliver_day"] + rng.integers(1, 6, size=m)
    r, s = np.flatnonzero(has_review), np.flatnonzero(has_survey)
    return {
        "reviews": {"pos": r, "rating": rating[r], "day": review_day[r]},
        "surveys": {"pos": s, "score": score[s], "day": survey_day[s]},
    }
