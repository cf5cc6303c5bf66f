"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987), in the Fader-Hardie (2005) formulation."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, gammaln

from ml.btyd._base import TransactionFitter, check_rfm
from ml.btyd._rows import Distinct, pair_index
from ml.btyd._special import log_power_integral, log_tail


class ParetoNBDFitter(TransactionFitter):
    """Pareto/NBD: purchases at rate lambda ~ Gamma(r, alpha), exponential lifetime with rate
    mu ~ Gamma(s, beta).

    The likelihood is Gamma(r+x) alpha^r beta^s / Gamma(r) * [(alpha+T)^-(r+x) (beta+T)^-s
    + s * int_{t_x}^T (alpha+tau)^-(r+x) (beta+tau)^-(s+1) dtau]; the integral is the A0 term of
    Fader & Hardie's note (their hypergeometric form), evaluated in log space by
    :func:`ml.btyd._special.log_power_integral` (hand-written 2F1, see that module for why).
    Fitted attributes as for :class:`~ml.btyd.BetaGeoFitter`, parameters (r, alpha, s, beta).
    """

    _param_names = ("r", "alpha", "s", "beta")

    def _theta0(self, x, tx, T):
        scale = max(float(np.mean(T)), 1e-3) / 4.0
        return np.log([1.0, scale, 1.0, scale])

    @staticmethod
    def _log_terms(params, x, tx, T):
        r, alpha, s, beta = params
        head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        died = np.log(s) + log_power_integral(alpha, beta, r + x, s + 1.0, tx, T)
        return head, alive, died

    def _prepare(self, data: list[Distinct], weights: np.ndarray) -> dict:
        """Distinct (x, t_x) and (x, T) pairs: the integral's tail terms depend on one pair."""
        x, tx, t_end = data
        lo_x, lo, lo_row = pair_index(x, tx)
        hi_x, hi, hi_row = pair_index(x, t_end)
        return {
            "x": x.values,
            "Wx": np.bincount(x.index, weights, x.values.size),
            "lo": (lo_x, lo, lo_row),
            "hi": (hi_x, hi, hi_row),
        }

    def _weighted_loglik(self, params, data, weights):
        """Total weighted log-likelihood; the 2F1 tails run once per distinct pair."""
        r, alpha, s, beta = params
        xv, (lo_x, lo, lo_row), (hi_x, hi, hi_row) = data["x"], data["lo"], data["hi"]
        head = data["Wx"] @ (gammaln(r + xv) - gammaln(r))
        head += weights.sum() * (r * np.log(alpha) + s * np.log(beta))
        alive = -(r + hi_x) * np.log(alpha + hi) - s * np.log(beta + hi)
        tail_lo = log_tail(alpha, beta, r + lo_x, s + 1.0, lo)[lo_row]
        gap = np.minimum(log_tail(alpha, beta, r + hi_x, s + 1.0, hi)[hi_row] - tail_lo, 0.0)
        with np.errstate(divide="ignore"):
            died = np.log(s) + tail_lo + np.log(-np.expm1(gap))
        return float(head + weights @ np.logaddexp(alive[hi_row], died)), None

    def _loglik(self, params, x, tx, T, grad=False):
        head, alive, died = self._log_terms(params, x, tx, T)
        return head + np.logaddexp(alive, died), None

    def conditional_probability_alive(self, frequency, recency, T) -> np.ndarray:
        """P(alive at T | x, t_x, T)."""
        params = self._check_fitted()
        x, tx, t_end = check_rfm(frequency, recency, T)
        _, alive, died = self._log_terms(params, x, tx, t_end)
        return expit(alive - died)

    def predict(self, t, frequency, recency, T) -> np.ndarray:
        """Conditional expected purchases in (T, T + t]:
        (r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)] P(alive)."""
        r, alpha, s, beta = self._check_fitted()
        x, tx, t_end = check_rfm(frequency, recency, T)
        t = np.asarray(t, dtype=float)
        if np.any(t < 0) or not np.all(np.isfinite(t)):
            raise ValueError("t must be finite and non-negative")
        log_growth = np.log1p(t / (beta + t_end))
        # [1 - (1+u)^-(s-1)] / (s-1), with its s -> 1 limit log(1+u)
        if abs(s - 1.0) < 1e-10:
            bracket = log_growth
        else:
            bracket = -np.expm1(-(s - 1.0) * log_growth) / (s - 1.0)
        rate = (r + x) * (beta + t_end) / (alpha + t_end)
        return rate * bracket * self.conditional_probability_alive(x, tx, t_end)

    def probability_of_zero_purchases(self, t, frequency, recency, T) -> np.ndarray:
        """P(no purchase in (T, T + t] | x, t_x, T).

        Given alive at T, lambda ~ Gamma(r+x, alpha+T) and mu ~ Gamma(s, beta+T); a purchase
        happens in the window iff the next event (purchase or death) is a purchase and comes
        before t: P(buy | alive) = (r+x)(alpha+T)^(r+x)(beta+T)^s
        * int_0^t (alpha+T+tau)^-(r+x+1) (beta+T+tau)^-s dtau.
        """
        r, alpha, s, beta = self._check_fitted()
        x, tx, t_end = check_rfm(frequency, recency, T)
        t = np.asarray(t, dtype=float)
        log_buy = (
            np.log(r + x)
            + (r + x) * np.log(alpha + t_end)
            + s * np.log(beta + t_end)
            + log_power_integral(alpha + t_end, beta + t_end, r + x + 1.0, s, 0.0, t)
        )
        p_buy = np.minimum(np.exp(log_buy), 1.0)
        return 1.0 - self.conditional_probability_alive(x, tx, t_end) * p_buy
