"""Configuration of the simulator: one frozen dataclass with every knob and its default.

Rates are per day, shares are probabilities. Defaults give a plausible mid-size European web
shop: ~22 % of sign-ups never order, buyers order about every 2-3 months on average with strong
heterogeneity (Gamma), and drop out after each order with a Beta-distributed probability.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

ACQUISITION_CHANNELS: tuple[str, ...] = (
    "organic",
    "paid_search",
    "social",
    "email",
    "referral",
    "affiliate",
)
CHANNEL_WEIGHTS: tuple[float, ...] = (0.35, 0.20, 0.15, 0.10, 0.10, 0.10)
# Multipliers on the purchase rate and on the dropout probability per acquisition channel:
# referred and e-mail customers are more loyal, social and paid ones less.
CHANNEL_RATE_MULT: tuple[float, ...] = (1.00, 0.90, 0.80, 1.10, 1.25, 0.90)
CHANNEL_DROPOUT_MULT: tuple[float, ...] = (1.00, 1.15, 1.30, 0.90, 0.75, 1.10)

COUNTRIES: tuple[str, ...] = ("DE", "FR", "NL", "ES", "IT", "BE", "AT", "PL", "SE", "IE")
COUNTRY_WEIGHTS: tuple[float, ...] = (0.28, 0.17, 0.12, 0.10, 0.10, 0.06, 0.05, 0.05, 0.04, 0.03)

LANDING_SOURCES: tuple[str, ...] = ("customers", "orders", "reviews", "surveys", "checkouts")


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that determines a simulated landing zone (same config -> same bytes).

    Parameters
    ----------
    customers : int
        Number of customers who sign up between ``start`` and ``end`` (inclusive).
    start, end : datetime.date
        First and last simulated day.
    seed : int
        Seed of every random draw.
    bad_row_rate : float
        Share of extra, deliberately invalid rows per source and day (0 = off).
    """

    customers: int = 2000
    start: dt.date = dt.date(2024, 1, 1)
    end: dt.date = dt.date(2024, 12, 31)
    seed: int = 42
    # --- acquisition: sign-up intensity = trend * weekly * yearly seasonality
    annual_signup_growth: float = 0.30
    weekly_signup_factors: tuple[float, ...] = (1.0, 0.98, 0.97, 1.0, 1.05, 1.12, 1.10)  # Mon..Sun
    prospect_share: float = 0.22
    # --- first order: a share of buyers orders right at sign-up, the rest after ~2 weeks
    instant_buyer_share: float = 0.45
    instant_first_order_rate: float = 48.0  # per day: mean 30 minutes after sign-up
    first_order_rate: float = 1.0 / 14.0  # per day for the others
    # --- repeat purchases (BG/NBD): lambda ~ Gamma(r, mean), dropout p ~ Beta(a, b)
    lambda_shape: float = 0.6
    lambda_mean: float = 1.0 / 75.0  # per day
    lambda_max: float = 0.3
    dropout_a: float = 1.2
    dropout_b: float = 4.8
    # --- spend (Gamma-Gamma): order value ~ Gamma(spend_shape, rate nu), nu ~ Gamma(q, gamma)
    spend_shape: float = 4.0
    spend_q: float = 4.0
    spend_mean: float = 65.0  # population mean of the per-customer mean order value
    currency: str = "EUR"
    free_shipping_threshold: float = 49.0
    shipping_fee: float = 4.90
    discount_share: float = 0.25
    app_share: float = 0.40
    # --- fulfilment experience
    cancel_rate: float = 0.03
    late_share: float = 0.10
    late_dropout_multiplier: float = 2.0
    return_rate: float = 0.05
    return_rate_late: float = 0.12
    # --- feedback
    review_rate: float = 0.18
    review_rate_late: float = 0.35
    survey_rate: float = 0.20
    # --- browsing: abandoned carts (per day)
    prospect_cart_rate: float = 0.004
    buyer_cart_factor: float = 0.5  # abandoned-cart rate = factor * lambda + base
    buyer_cart_base: float = 0.002
    dead_cart_rate: float = 0.0005
    # --- demo of the quarantine
    bad_row_rate: float = 0.0
    sources: tuple[str, ...] = field(default=LANDING_SOURCES)

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError("customers must be >= 1")
        if self.end < self.start:
            raise ValueError("end must not be before start")
        if not 0.0 <= self.bad_row_rate <= 1.0:
            raise ValueError("bad_row_rate must be within [0, 1]")
        if self.spend_q <= 1.0:
            raise ValueError("spend_q must be > 1 so the mean order value exists")
        unknown = set(self.sources) - set(LANDING_SOURCES)
        if unknown or "orders" not in self.sources:
            raise ValueError(f"sources must include 'orders' and be among {LANDING_SOURCES}")
        if len(self.weekly_signup_factors) != 7:
            raise ValueError("weekly_signup_factors needs 7 values (Mon..Sun)")

    @property
    def n_days(self) -> int:
        """Number of simulated days (``start`` and ``end`` inclusive)."""
        return (self.end - self.start).days + 1

    @property
    def spend_gamma(self) -> float:
        """Rate ``gamma`` of the Gamma(q, gamma) prior on ``nu``, so E[mean value] = spend_mean."""
        return self.spend_mean * (self.spend_q - 1.0) / self.spend_shape

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of every field (dates as ISO strings)."""
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["end"] = self.end.isoformat()
        out["weekly_signup_factors"] = list(self.weekly_signup_factors)
        out["sources"] = list(self.sources)
        return out
