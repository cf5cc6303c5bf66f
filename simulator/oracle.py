"""Oracles: Bayes-optimal predictions from a customer's observed history at time ``T``.

The latent-state ground truth (:mod:`simulator.truth`) knows whether a customer can still
order; no model of observable data can know that. The *trait oracle* knows the customer's
traits (purchase rate ``lambda``, dropout probability ``p`` and its effective value ``q``,
first-order rate ``mu``, mean order value) but not the alive state, and infers the state from
the history. The *population oracle* (:func:`population_oracle`) knows neither: it integrates
the traits over the simulator's priors given the history, which is the best any model of the
observable data can do; the trait oracle is an upper bound between the two.

The process (:mod:`simulator.engine`, :func:`simulator.orders.draw_orders`): after each
order - cancelled or not - the customer drops out with probability ``d``: ``min(1, m p)``
when that order is delivered late (``m`` = ``late_dropout_multiplier``), ``p`` otherwise (a
cancelled order is never late). A customer who stays places the next order after an
``Exp(lambda)`` wait. Abandoned carts arrive as a Poisson process with rate
``r_a = buyer_cart_factor * lambda + buyer_cart_base`` while alive and ``r_d =
dead_cart_rate`` after the dropout.

**P(alive).** Everything before the last order (time ``t_x``) has the same likelihood
whether or not the customer left after it, so only the last order, the time ``D = T - t_x``
without an order since and the ``k`` abandoned carts in ``(t_x, T]`` matter::

    L(alive) = (1 - d) exp(-lambda D) r_a^k exp(-r_a D)
    L(dead)  = d r_d^k exp(-r_d D)
    P(alive) = L(alive) / (L(alive) + L(dead))

``d`` is ``p`` or ``min(1, m p)`` when the last order's fate is known (cancelled, delivered,
or undelivered past its promised date, hence late), else ``q`` (the average); leaving out the
carts (``carts=None``) drops their factors. Buyers still awaiting their first order are alive.

**Future.** A customer alive at ``T`` orders again after ``Exp(lambda)``; each order is
cancelled with probability ``c`` and followed by a dropout with probability ``q`` on average
(``p`` after a cancelled one). Thinning the order stream into "non-cancelled" (rate
``lambda (1 - c)``), "cancelled, then gone" (``lambda c p``) and "cancelled, stays" (no
change of state) gives, with ``kappa = lambda (1 - c + c p)`` and ``a = (1 - c) / (1 - c +
c p)``: P(a non-cancelled order within ``h``) = ``a (1 - exp(-kappa h))``. Expected orders
(any status) follow :func:`simulator.truth.expected_orders_curve`; a given order is kept
(not cancelled) and not returned with a probability independent of the rest of the path.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy import special, stats

from simulator.config import CHANNEL_DROPOUT_MULT, CHANNEL_RATE_MULT, SimulatorConfig
from simulator.population import effective_dropout
from simulator.truth import expected_orders_curve

CHUNK = 4096


def cart_rates(config: SimulatorConfig, lam: np.ndarray) -> tuple[np.ndarray, float]:
    """Abandoned-cart rates per day of an alive buyer (per customer) and of a dropped-out one.

    Parameters
    ----------
    config : SimulatorConfig
        ``buyer_cart_factor``, ``buyer_cart_base`` and ``dead_cart_rate``.
    lam : numpy.ndarray
        Purchase rates per day.

    Returns
    -------
    tuple
        ``(r_alive, r_dead)``.
    """
    lam = np.asarray(lam, float)
    return config.buyer_cart_factor * lam + config.buyer_cart_base, config.dead_cart_rate


def last_order_dropout(
    config: SimulatorConfig, p: np.ndarray, late: np.ndarray, cancelled: np.ndarray
) -> np.ndarray:
    """Dropout probability after each customer's last order, given what is known about it.

    Parameters
    ----------
    config : SimulatorConfig
        Cancel rate, late share and ``late_dropout_multiplier``.
    p : numpy.ndarray
        Dropout probability after an on-time order.
    late : numpy.ndarray
        1 = known late, 0 = known on time, NaN = not known yet.
    cancelled : numpy.ndarray of bool
        The order is known to be cancelled (never late).

    Returns
    -------
    numpy.ndarray
        ``p`` (on time or cancelled), ``min(1, m p)`` (late), the effective ``q`` (unknown).
    """
    p = np.asarray(p, float)
    late = np.asarray(late, float)
    d = np.where(late == 1.0, np.minimum(1.0, config.late_dropout_multiplier * p), p)
    unknown = np.isnan(late) & ~np.asarray(cancelled, bool)
    return np.where(unknown, effective_dropout(config, p), d)


def p_alive(
    lam: np.ndarray,
    d_last: np.ndarray,
    since_last: np.ndarray,
    carts: np.ndarray | None = None,
    rate_alive: np.ndarray | float = 0.0,
    rate_dead: float = 0.0,
) -> np.ndarray:
    """P(alive at ``T``) of a buyer, given the traits and the history since the last order.

    Parameters
    ----------
    lam : numpy.ndarray
        Purchase rate per day.
    d_last : numpy.ndarray
        Dropout probability after the last order (:func:`last_order_dropout`).
    since_last : numpy.ndarray
        Days from the last order (any status) to ``T``, without an order in between.
    carts : numpy.ndarray, optional
        Abandoned carts in ``(t_last, T]``; None leaves the carts out of the evidence.
    rate_alive, rate_dead : array or float
        Abandoned-cart rates per day alive and dropped out (:func:`cart_rates`).

    Returns
    -------
    numpy.ndarray
        Posterior probability that the customer can still order.
    """
    lam, d, dt = (np.asarray(v, float) for v in (lam, d_last, since_last))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_odds = np.log1p(-d) - np.log(d) - lam * dt
        if carts is not None:
            k = np.asarray(carts, float)
            ra = np.broadcast_to(np.asarray(rate_alive, float), lam.shape)
            ratio = np.where(k > 0, k * (np.log(ra) - np.log(rate_dead)), 0.0)
            log_odds = log_odds + ratio - (ra - rate_dead) * dt
    log_odds = np.nan_to_num(log_odds, nan=0.0, posinf=np.inf, neginf=-np.inf)
    return 1.0 / (1.0 + np.exp(-log_odds))


def _first_kept(lam, p, cancel_rate):
    """(a, kappa): P(non-cancelled order within h | alive buyer) = a (1 - exp(-kappa h))."""
    lam, p = np.asarray(lam, float), np.asarray(p, float)
    denom = 1.0 - cancel_rate + cancel_rate * p
    return (1.0 - cancel_rate) / denom, lam * denom


def p_no_order(
    alive: np.ndarray,
    lam: np.ndarray,
    p: np.ndarray,
    cancel_rate: float,
    horizon: float,
    mu: np.ndarray | None = None,
    waiting: np.ndarray | None = None,
) -> np.ndarray:
    """P(no non-cancelled order in ``(T, T + horizon]``) given P(alive at ``T``).

    Parameters
    ----------
    alive : numpy.ndarray
        P(alive at ``T``) (:func:`p_alive`; 0/1 for the latent-state oracle).
    lam, p : numpy.ndarray
        Purchase rate per day; dropout probability after an on-time (or cancelled) order.
    cancel_rate : float
        Share of orders cancelled.
    horizon : float
        Days.
    mu, waiting : numpy.ndarray, optional
        First-order rate and a mask of customers still awaiting their first order (their
        next order comes at rate ``mu``, the following ones at ``lambda``).

    Returns
    -------
    numpy.ndarray
        Probability of no kept order within the horizon.
    """
    a, kappa = _first_kept(lam, p, cancel_rate)
    buy = a * (1.0 - np.exp(-kappa * horizon))
    if waiting is not None:
        m, c = np.asarray(mu, float), cancel_rate
        diff = m - kappa
        with np.errstate(divide="ignore", invalid="ignore"):
            mix = np.where(
                np.abs(diff) < 1e-12,
                m * horizon * np.exp(-kappa * horizon),
                m * (np.exp(-kappa * horizon) - np.exp(-m * horizon)) / diff,
            )
        stays = c * (1.0 - np.asarray(p, float)) * a
        first = (1.0 - c + stays) * (1.0 - np.exp(-m * horizon)) - stays * mix
        buy = np.where(np.asarray(waiting, bool), first, buy)
    return 1.0 - np.asarray(alive, float) * buy


def kept_value_factor(config: SimulatorConfig, count_returns: bool = False) -> float:
    """Expected share of an order's ``order_total`` that counts as spend.

    Cancelled orders count 0; returned ones count 0 unless ``count_returns`` (the ground
    truth's ``expected_spend_*`` counts them, :func:`ml.clv_challenger.future_spend` does not).
    """
    kept = 1.0 - config.cancel_rate
    if count_returns:
        return kept
    late = config.late_share  # among kept orders
    returned = (1.0 - late) * config.return_rate + late * config.return_rate_late
    return kept * (1.0 - returned)


def expected_spend(
    alive: np.ndarray,
    lam: np.ndarray,
    q: np.ndarray,
    mean_value: np.ndarray,
    season: np.ndarray,
    value_factor: float,
    mu: np.ndarray | None = None,
    waiting: np.ndarray | None = None,
) -> np.ndarray:
    """Expected spend in the ``len(season)`` days after ``T`` given P(alive at ``T``).

    Parameters
    ----------
    alive : numpy.ndarray
        P(alive at ``T``).
    lam, q : numpy.ndarray
        Purchase rate per day, effective dropout probability per order.
    mean_value : numpy.ndarray
        Mean order value outside the season (``spend_shape / nu``).
    season : numpy.ndarray
        Spend factor of each day after ``T`` (index 0 = the first day).
    value_factor : float
        Share of the order value that counts (:func:`kept_value_factor`).
    mu, waiting : numpy.ndarray, optional
        First-order rate and mask of customers still awaiting their first order.

    Returns
    -------
    numpy.ndarray
        ``alive * value_factor * mean_value * sum_j season_j * E[orders on day j | alive]``.
    """
    lam, q = np.asarray(lam, float), np.asarray(q, float)
    n, season = lam.shape[0], np.asarray(season, float)
    state = np.ones(n, int) if waiting is None else np.where(np.asarray(waiting, bool), 2, 1)
    mu = np.zeros(n) if mu is None else np.asarray(mu, float)
    t = np.arange(season.shape[0] + 1, dtype=float)
    weighted = np.empty(n)
    for lo in range(0, n, CHUNK):
        sl = slice(lo, lo + CHUNK)
        curve = expected_orders_curve(state[sl], lam[sl], q[sl], mu[sl], t)
        weighted[sl] = np.diff(curve, axis=1) @ season
    return np.asarray(alive, float) * value_factor * np.asarray(mean_value, float) * weighted


@dataclass(frozen=True)
class BuyerHistory:
    """Sufficient statistics of each buyer's history observed at ``T`` (equal-length arrays).

    ``n_orders`` counts every order placed (any status); the fates of the orders before the
    last (``earlier_ok``: on time or cancelled, ``earlier_late``; the rest unknown yet) and of
    the last one (``last_late`` 1/0/NaN, ``last_cancelled``) are as known at ``T``. Times in
    days: ``span`` first to last order, ``exposure`` sign-up to last order, ``since_last`` last
    order to ``T``. Abandoned carts are split at the last order. ``value_sum`` sums every
    order's ``order_total`` divided by the season factor of its day, ``cart_value_sum`` the
    same for the abandoned carts' ``cart_value``.
    """

    channel: np.ndarray
    n_orders: np.ndarray
    span: np.ndarray
    exposure: np.ndarray
    since_last: np.ndarray
    earlier_ok: np.ndarray
    earlier_late: np.ndarray
    last_late: np.ndarray
    last_cancelled: np.ndarray
    carts_before: np.ndarray
    carts_after: np.ndarray
    value_sum: np.ndarray
    cart_value_sum: np.ndarray


# The feedback model hard-coded in simulator.orders.draw_feedback (keep in sync): the score
# is rint(base - late * c_late - late_days * c_day - returned * c_ret + c_mood * (0.2 - p) +
# N(0, sd)) clipped to [lo, hi]. Values: (base, c_late, c_day, c_ret, c_mood, sd, lo, hi).
FEEDBACK = {
    "rating": (4.4, 1.8, 0.08, 0.6, 3.0, 0.9, 1, 5),
    "nps": (8.6, 3.0, 0.15, 1.5, 6.0, 1.6, 0, 10),
}


@dataclass(frozen=True)
class Feedback:
    """Review ratings and NPS answers known at ``T``, one entry each (equal-length arrays).

    ``row``: the buyer's index in the :class:`BuyerHistory`; ``is_nps``: NPS answer (else a
    review rating); ``score``; the rated order's ``late`` (0/1) and ``late_days``; and
    ``returned``: 1, 0 or the probability that it will still be returned.
    """

    row: np.ndarray
    is_nps: np.ndarray
    score: np.ndarray
    late: np.ndarray
    late_days: np.ndarray
    returned: np.ndarray


def feedback_loglik(fb: Feedback, p: np.ndarray) -> np.ndarray:
    """Log-probability of each answer (rows) given the dropout probability ``p`` (columns)."""
    out = np.empty((fb.score.shape[0], np.asarray(p).shape[0]))
    for is_nps, (base, c_late, c_day, c_ret, c_mood, sd, lo, hi) in enumerate(FEEDBACK.values()):
        m = np.asarray(fb.is_nps, bool) == bool(is_nps)
        score = np.asarray(fb.score, float)[m, None]
        upper = np.where(score >= hi, np.inf, score + 0.5)
        lower = np.where(score <= lo, -np.inf, score - 0.5)
        late, days = np.asarray(fb.late, float)[m], np.asarray(fb.late_days, float)[m]
        shift = base - c_late * late - c_day * days
        ret = np.asarray(fb.returned, float)[m, None]
        prob = 0.0
        for r, weight in ((1.0, ret), (0.0, 1.0 - ret)):
            mu = (shift - c_ret * r)[:, None] + c_mood * (0.2 - np.asarray(p, float))[None, :]
            prob = prob + weight * (
                special.ndtr((upper - mu) / sd) - special.ndtr((lower - mu) / sd)
            )
        out[m] = _log(prob)
    return out


def _prior_grid(config: SimulatorConfig, channel: int, n_lam: int, n_p: int):
    """Grid points (lambda, p) of one channel with their prior probabilities (cell masses)."""
    shape, scale = config.lambda_shape, config.lambda_mean / config.lambda_shape
    g_edges = np.r_[0.0, np.geomspace(1e-8, stats.gamma.ppf(1 - 1e-9, shape, scale=scale), n_lam)]
    g_mass = np.diff(stats.gamma.cdf(g_edges, shape, scale=scale))
    g_mid = np.r_[0.5e-8, np.sqrt(g_edges[1:-1] * g_edges[2:])]
    b_edges = np.linspace(0.0, 1.0, n_p + 1)
    b_mass = np.diff(stats.beta.cdf(b_edges, config.dropout_a, config.dropout_b))
    b_mid = 0.5 * (b_edges[:-1] + b_edges[1:])
    lam = np.clip(g_mid * CHANNEL_RATE_MULT[channel], 1e-9, config.lambda_max)
    p = np.clip(b_mid * CHANNEL_DROPOUT_MULT[channel], 1e-6, 1.0)
    lam, p = (a.ravel() for a in np.meshgrid(lam, p, indexing="ij"))
    mass = np.outer(g_mass, b_mass).ravel()
    keep = mass > 0
    return lam[keep], p[keep], mass[keep] / mass[keep].sum()


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, 1e-300))


def _alive_spend_rate(lam: np.ndarray, q: np.ndarray, season: np.ndarray) -> np.ndarray:
    """sum_j season_j * E[orders on day j after T | alive buyer] (only special days iterate)."""
    k = lam * q
    season = np.asarray(season, float)
    rate = (1.0 - np.exp(-k * season.size)) / q
    for j in np.flatnonzero(season != 1.0):  # day j + 1 after T
        rate += (season[j] - 1.0) * (np.exp(-k * j) - np.exp(-k * (j + 1))) / q
    return rate


def _history_matrix(hist: BuyerHistory, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer coefficients of the grid's log-likelihood terms (see population_oracle)."""
    h = {f.name: np.asarray(getattr(hist, f.name), float)[rows] for f in fields(BuyerHistory)}
    late, cancelled = h["last_late"], h["last_cancelled"] > 0
    unknown_fate = np.isnan(late) & ~cancelled
    common = [
        np.ones(rows.size),
        h["n_orders"] - 1.0,
        -h["span"],
        h["earlier_ok"],
        h["earlier_late"],
        h["n_orders"] - 1.0 - h["earlier_ok"] - h["earlier_late"],
        h["carts_before"],
        -h["exposure"],
    ]
    fate = [~unknown_fate & (late != 1.0), late == 1.0, unknown_fate]  # d = p, m p, q
    after = [-h["since_last"], h["carts_after"]]
    return np.column_stack([*common, *fate, *after]).astype(float), h["since_last"]


def population_oracle(
    config: SimulatorConfig,
    hist: BuyerHistory,
    season: np.ndarray,
    feedback: Feedback | None = None,
    horizon: float = 90.0,
    n_lam: int = 200,
    n_p: int = 80,
    chunk: int = 512,
) -> dict[str, np.ndarray]:
    """Bayes-optimal predictions from the observed history and the *population* prior.

    Unlike the trait oracle, the individual traits are not known: ``(lambda, p)`` are
    integrated over the simulator's prior for the customer's channel on a grid, weighted by
    the likelihood of the history (orders, their known fates, abandoned carts, and the review
    ratings and NPS answers if given); the mean order value uses the conjugate Gamma posterior
    of ``nu`` given the (deseasonalised) order and abandoned-cart values. Up to the grid and
    the approximations of :class:`Feedback` this is the best any model of the observable data
    can do.

    The log-likelihood of grid point ``(lambda, p)`` is ``log prior + (x - 1) log lambda -
    lambda span + sum over earlier orders of log(1 - d_i) + k_before log r_a - r_a exposure``
    plus, alive after the last order, ``log(1 - d) - (lambda + r_a) D + k_after log r_a`` or,
    gone, ``log d - r_d D + k_after log r_d`` (notation of the module docstring): linear in
    per-customer counts, so one matrix product per branch.

    Parameters
    ----------
    config : SimulatorConfig
        The simulator's priors and rates.
    hist : BuyerHistory
        The buyers' observed histories.
    season : numpy.ndarray
        Spend factor of each day after ``T``; its length is the spend horizon.
    feedback : Feedback, optional
        Review ratings and NPS answers: their level depends on ``p`` (unhappy customers
        complain and leave), so they sharpen its posterior.
    horizon : float
        Churn horizon in days.
    n_lam, n_p, chunk : int
        Grid size over ``lambda`` and ``p``; customers per block.

    Returns
    -------
    dict of numpy.ndarray
        ``p_alive``, ``p_no_order`` (no kept order within ``horizon``), ``expected_spend``.
    """
    n = hist.n_orders.shape[0]
    out = np.empty((n, 3))
    for ch in np.unique(hist.channel):
        lam, p, mass = _prior_grid(config, int(ch), n_lam, n_p)
        q = effective_dropout(config, p)
        p_late = np.minimum(1.0, config.late_dropout_multiplier * p)
        ra, rd = cart_rates(config, lam)
        a, kappa = _first_kept(lam, p, config.cancel_rate)
        common = [_log(mass), _log(lam), lam, _log(1 - p), _log(1 - p_late), _log(1 - q)]
        common += [_log(ra), ra]
        grid_a = np.vstack(
            [*common, _log(1 - p), _log(1 - p_late), _log(1 - q), lam + ra, _log(ra)]
        )
        log_rd = np.full(lam.size, np.log(max(rd, 1e-300)))
        grid_b = np.vstack([*common, _log(p), _log(p_late), _log(q), np.zeros_like(lam), log_rd])
        future = np.column_stack(
            [
                np.ones(lam.size),
                a * (1 - np.exp(-kappa * horizon)),
                _alive_spend_rate(lam, q, season),
            ]
        )
        p_values, p_index = np.unique(p, return_inverse=True)
        by_p = np.zeros((n, p_values.size))
        if feedback is not None:
            mine = np.asarray(hist.channel)[feedback.row] == ch
            sub = Feedback(*(np.asarray(getattr(feedback, f.name))[mine] for f in fields(Feedback)))
            np.add.at(by_p, sub.row, feedback_loglik(sub, p_values))
        members = np.flatnonzero(hist.channel == ch)
        for lo in range(0, members.size, chunk):
            rows = members[lo : lo + chunk]
            coef, since = _history_matrix(hist, rows)
            answers = by_p[rows][:, p_index]
            log_a = coef @ grid_a + answers
            log_b = coef @ grid_b - rd * since[:, None] + answers
            top = np.maximum(log_a.max(axis=1), log_b.max(axis=1))[:, None]
            w_a = np.exp(log_a - top) @ future
            total = w_a[:, 0] + np.exp(log_b - top).sum(axis=1)
            out[rows] = w_a / total[:, None]
    # nu | values ~ Gamma: each order value / season ~ Gamma(shape, nu), each abandoned cart's
    # ~ Gamma(2, 2 nu / shape) (simulator.engine); mean order value = shape E[1 / nu].
    shape, n_carts = config.spend_shape, hist.carts_before + hist.carts_after
    rate = config.spend_gamma + hist.value_sum + 2.0 / shape * hist.cart_value_sum
    mean_value = shape * rate / (config.spend_q + shape * hist.n_orders + 2.0 * n_carts - 1.0)
    spend = out[:, 2] * mean_value * kept_value_factor(config)
    return {"p_alive": out[:, 0], "p_no_order": 1.0 - out[:, 1], "expected_spend": spend}
