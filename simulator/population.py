"""Customers and their latent parameters, drawn once up front as flat numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.calendar import signup_weights
from simulator.config import (
    CHANNEL_DROPOUT_MULT,
    CHANNEL_RATE_MULT,
    CHANNEL_WEIGHTS,
    COUNTRY_WEIGHTS,
    SimulatorConfig,
)


@dataclass
class Population:
    """Per-customer arrays, index ``i`` is customer ``C{i+1}``; sorted by sign-up time.

    Times are float days since ``config.start`` 00:00 UTC.
    """

    signup_t: np.ndarray  # float64
    channel: np.ndarray  # int8 index into ACQUISITION_CHANNELS
    country: np.ndarray  # int8 index into COUNTRIES
    is_prospect: np.ndarray  # bool: never orders
    first_order_rate: np.ndarray  # per day; 0 for prospects
    lam: np.ndarray  # repeat purchase rate per day
    p: np.ndarray  # dropout probability after an on-time order
    nu: np.ndarray  # Gamma-Gamma rate: mean order value = spend_shape / nu
    signup_bounds: np.ndarray  # customers signed up on day d are [bounds[d], bounds[d+1])

    @property
    def size(self) -> int:
        return int(self.signup_t.shape[0])


def draw_population(config: SimulatorConfig, rng: np.random.Generator) -> Population:
    """Draw sign-up times and latent parameters of every customer.

    Parameters
    ----------
    config : SimulatorConfig
        Simulation settings.
    rng : numpy.random.Generator
        Source of randomness (consumed deterministically).

    Returns
    -------
    Population
        Arrays of length ``config.customers``.
    """
    n, n_days = config.customers, config.n_days
    weights = signup_weights(
        config.start, n_days, config.annual_signup_growth, config.weekly_signup_factors
    )
    per_day = rng.multinomial(n, weights)
    day = np.repeat(np.arange(n_days), per_day)
    signup_t = np.sort(day + rng.random(n))
    # float rounding must never push a sign-up into the next day
    signup_t = np.minimum(signup_t, day + 1.0 - 1e-9)
    bounds = np.concatenate([[0], np.cumsum(per_day)])

    channel = rng.choice(len(CHANNEL_WEIGHTS), size=n, p=np.asarray(CHANNEL_WEIGHTS))
    country = rng.choice(len(COUNTRY_WEIGHTS), size=n, p=np.asarray(COUNTRY_WEIGHTS))
    channel = channel.astype(np.int8)
    country = country.astype(np.int8)

    is_prospect = rng.random(n) < config.prospect_share
    instant = rng.random(n) < config.instant_buyer_share
    first_rate = np.where(instant, config.instant_first_order_rate, config.first_order_rate)
    first_rate = np.where(is_prospect, 0.0, first_rate)

    lam = rng.gamma(config.lambda_shape, config.lambda_mean / config.lambda_shape, size=n)
    lam = np.clip(lam * np.asarray(CHANNEL_RATE_MULT)[channel], 1e-9, config.lambda_max)
    p = rng.beta(config.dropout_a, config.dropout_b, size=n)
    p = np.clip(p * np.asarray(CHANNEL_DROPOUT_MULT)[channel], 1e-6, 1.0)
    nu = rng.gamma(config.spend_q, 1.0 / config.spend_gamma, size=n)
    return Population(
        signup_t=signup_t,
        channel=channel,
        country=country,
        is_prospect=is_prospect,
        first_order_rate=first_rate,
        lam=lam,
        p=p,
        nu=nu,
        signup_bounds=bounds,
    )


def effective_dropout(config: SimulatorConfig, p: np.ndarray) -> np.ndarray:
    """Expected dropout probability per order, averaging over late / on-time / cancelled.

    Cancelled orders are never delivered, hence never late; a late delivery multiplies the
    dropout probability of that order by ``late_dropout_multiplier`` (capped at 1).
    """
    late = (1.0 - config.cancel_rate) * config.late_share
    p_late = np.minimum(1.0, config.late_dropout_multiplier * p)
    return (1.0 - late) * p + late * p_late
