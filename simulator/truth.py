"""Ground truth per customer: latent parameters and analytic expectations after the end date.

Expected orders in the ``t`` days after the end (time ``T`` = end of the last day), given the
latent state (no simulation of the future; the calendar beyond the end is known):

* prospects and customers who dropped out: 0;
* alive customers who have ordered (BG/NBD with dropout after each order, probability ``q``):
  the number of further orders is ``min(N(t), G)`` with ``N ~ Poisson(lambda t)`` and
  ``G ~ Geometric(q)``, so ``E[X(t)] = (1 - exp(-lambda q t)) / q``;
* buyers still waiting for their first order (exponential with rate ``mu``):
  ``E[X(t)] = A + (1 - q) / q * (A - B)`` with ``A = 1 - exp(-mu t)`` and
  ``B = mu (exp(-lambda q t) - exp(-mu t)) / (mu - lambda q)``.

``q`` is the *effective* dropout probability per order: ``p`` averaged over the chance that the
order is delivered late (``p`` multiplied by ``late_dropout_multiplier``) or cancelled.

Expected spend sums, day by day, expected orders x mean order value (``spend_shape / nu``) x
the calendar's seasonal spend factor x (1 - cancel rate): it is the expected ``order_total`` of
orders that are not cancelled (returned orders count). ``alive_at_end`` means "can still
order": neither a prospect nor dropped out (buyers awaiting their first order are alive);
``dropout_date`` is the ``YYYY-MM-DD`` of the order after which the customer left.
``p_no_order_90`` is ``exp(-lambda 90)`` for alive buyers, ``exp(-mu 90)`` for buyers waiting
for their first order and 1 otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simulator.config import ACQUISITION_CHANNELS, COUNTRIES
from simulator.emit import customer_ids, timestamps
from simulator.population import effective_dropout

if TYPE_CHECKING:
    from simulator.engine import Simulation

HORIZONS = (90, 365)
CHUNK = 65_536


def expected_orders_curve(
    state: np.ndarray, lam: np.ndarray, q: np.ndarray, mu: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Expected number of orders in ``(T, T + t]`` for each customer (rows) and ``t`` (cols).

    Parameters
    ----------
    state : numpy.ndarray
        0 = cannot order (prospect or dropped out), 1 = alive buyer, 2 = awaiting first order.
    lam, q, mu : numpy.ndarray
        Purchase rate per day, effective dropout probability, first-order rate per day.
    t : numpy.ndarray
        Horizons in days.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(state), len(t))``.
    """
    k = (lam * q)[:, None]
    tt = t[None, :].astype(float)
    alive = (1.0 - np.exp(-k * tt)) / q[:, None]
    m = mu[:, None]
    a = 1.0 - np.exp(-m * tt)
    diff = m - k
    safe = np.where(np.abs(diff) < 1e-12, 1e-12, diff)
    b = np.where(
        np.abs(diff) < 1e-12,
        m * tt * np.exp(-k * tt),
        m * (np.exp(-k * tt) - np.exp(-m * tt)) / safe,
    )
    pending = a + (1.0 - q[:, None]) / q[:, None] * (a - b)
    s = state[:, None]
    return np.where(s == 1, alive, np.where(s == 2, pending, 0.0))


def ground_truth(sim: Simulation) -> pd.DataFrame:
    """One row per customer with latent parameters, end state and expectations.

    Parameters
    ----------
    sim : Simulation
        A simulation that has yielded at least one day; the truth is as of the end of the last
        yielded day (the end date once :meth:`Simulation.days` is exhausted) and covers the
        customers signed up by then.

    Returns
    -------
    pandas.DataFrame
        See the module docstring for the definitions.
    """
    if sim.days_done < 1:
        raise RuntimeError("iterate Simulation.days() before asking for the truth")
    c, t_end = sim.config, sim.days_done
    n = int(sim.pop.signup_bounds[t_end])
    pop = sim.pop
    lam, p, nu, mu = pop.lam[:n], pop.p[:n], pop.nu[:n], pop.first_order_rate[:n]
    is_prospect, n_orders = pop.is_prospect[:n], sim.n_orders[:n]
    dropout_day = sim.dropout_day[:n]
    dead = dropout_day >= 0
    state = np.where(is_prospect | dead, 0, np.where(n_orders > 0, 1, 2))
    q = effective_dropout(c, p)
    mean_value = c.spend_shape / nu
    # Spend = mean value x sum_j season_j x (E(j) - E(j-1)). The season is 1 on most days, so
    # only E at the horizons and around the seasonal days is needed.
    horizon = max(HORIZONS)
    season = sim.season[t_end : t_end + horizon]  # factor of horizon day j at index j - 1
    special = np.flatnonzero(season != 1.0) + 1
    points = np.unique(np.concatenate([[0], HORIZONS, special, special - 1]))
    at = {int(v): i for i, v in enumerate(points)}
    cols_j, cols_prev = [at[int(j)] for j in special], [at[int(j) - 1] for j in special]
    uplift = {h: (season[special - 1] - 1.0) * (special <= h) for h in HORIZONS}
    value = mean_value * (1.0 - c.cancel_rate)
    exp_orders = {h: np.empty(n) for h in HORIZONS}
    exp_spend = {h: np.empty(n) for h in HORIZONS}
    for lo in range(0, n, CHUNK):
        sl = slice(lo, lo + CHUNK)
        curve = expected_orders_curve(state[sl], lam[sl], q[sl], mu[sl], points)
        step = curve[:, cols_j] - curve[:, cols_prev]
        for h in HORIZONS:
            exp_orders[h][sl] = curve[:, at[h]]
            exp_spend[h][sl] = (curve[:, at[h]] + step @ uplift[h]) * value[sl]
    p_none = np.where(
        state == 1, np.exp(-lam * 90.0), np.where(state == 2, np.exp(-mu * 90.0), 1.0)
    )
    dropout_date = sim.dates[np.maximum(dropout_day, 0)].copy()
    dropout_date[~dead] = None
    signup_sec = sim.start_sec + np.floor(pop.signup_t[:n] * 86_400).astype(np.int64)
    return pd.DataFrame(
        {
            "customer_id": customer_ids(sim, np.arange(n)),
            "signed_up_at": timestamps(signup_sec),
            "acquisition_channel": np.asarray(ACQUISITION_CHANNELS, dtype=object)[pop.channel[:n]],
            "country": np.asarray(COUNTRIES, dtype=object)[pop.country[:n]],
            "is_prospect": is_prospect,
            "first_order_rate": mu,
            "lambda": lam,
            "p_dropout": p,
            "p_dropout_effective": q,
            "spend_shape": np.full(n, c.spend_shape),
            "spend_nu": nu,
            "spend_mean": mean_value,
            "orders_placed": n_orders.astype(np.int64),
            "alive_at_end": state > 0,
            "dropout_date": dropout_date,
            "expected_orders_90": exp_orders[90],
            "expected_orders_365": exp_orders[365],
            "expected_spend_90": exp_spend[90],
            "expected_spend_365": exp_spend[365],
            "p_no_order_90": p_none,
        }
    )
