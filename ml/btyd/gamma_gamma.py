"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value curves")."""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from ml.btyd._base import ArrayLike, BaseFitter, as_float_array
from ml.btyd._rows import Distinct


def _check_spend(frequency: ArrayLike, monetary_value: ArrayLike):
    x = as_float_array("frequency", frequency)
    m = as_float_array("monetary_value", monetary_value)
    if x.size != m.size:
        raise ValueError(f"frequency and monetary_value lengths differ ({x.size}, {m.size})")
    if np.any(x != np.round(x)):
        raise ValueError("frequency must be a whole number of repeat purchases")
    return x, m


class GammaGammaFitter(BaseFitter):
    """Average transaction value: spends z ~ Gamma(p, nu) per customer, nu ~ Gamma(q, gamma).

    Zero/tiny spend rule: the model needs strictly positive spend, so ``fit`` uses repeat buyers
    only (frequency > 0 and monetary_value > 0); rows with monetary_value == 0 are dropped from
    the fit (tiny positive values are fine: everything is in log space). In
    :meth:`conditional_expected_average_profit` customers without repeat purchases get the
    population mean p * gamma / (q - 1), and a repeat buyer with zero observed spend gets the
    formula with m = 0 (shrunk towards zero). Negative spend raises ValueError.
    Fitted attributes: ``params_`` (p, q, gamma), ``log_likelihood_``, ``n_customers_``.
    """

    _param_names = ("p", "q", "gamma")

    def _loglik(self, params, x, m, grad=False):
        p, q, g = params
        px = p * x
        log_den = np.log(g + x * m)
        ll = (
            gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g)
            + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * log_den
        )  # fmt: skip
        if not grad:
            return ll, None
        psi = digamma(px + q)
        grads = np.column_stack(
            [
                x * (psi - digamma(px) + np.log(m) + np.log(x) - log_den),
                psi - digamma(q) + np.log(g) - log_den,
                q / g - (px + q) / (g + x * m),
            ]
        )
        return ll, grads

    def _prepare(self, data: list[Distinct], weights: np.ndarray) -> dict:
        """Weight sums per distinct x and the data-only sums of the log-likelihood."""
        x, m = data
        xf, mf = x.full, m.full
        wx = weights * xf
        return {
            "x": x.values,
            "Wx": np.bincount(x.index, weights, x.values.size),
            "W": float(weights.sum()),
            "wx": wx,
            "xm": xf * mf,
            "sum_log_m": weights @ np.log(mf),
            "sum_x_log_xm": wx @ (np.log(mf) + np.log(xf)),
        }

    def _weighted_loglik(self, params, data, weights):
        """Total weighted log-likelihood and gradient; gammaln/digamma once per distinct x."""
        p, q, g = params
        d = data
        pxv = p * d["x"]
        den = d["xm"] + g
        log_den = np.log(den)
        wx_log_den = d["wx"] @ log_den
        w_log_den = weights @ log_den
        total = (
            d["Wx"] @ (gammaln(pxv + q) - gammaln(pxv))
            + d["W"] * (q * np.log(g) - gammaln(q))
            + p * d["sum_x_log_xm"] - d["sum_log_m"]
            - p * wx_log_den - q * w_log_den
        )  # fmt: skip
        psi = digamma(pxv + q)
        grad = np.array(
            [
                d["Wx"] @ (d["x"] * (psi - digamma(pxv))) + d["sum_x_log_xm"] - wx_log_den,
                d["Wx"] @ psi + d["W"] * (np.log(g) - digamma(q)) - w_log_den,
                d["W"] * q / g - (p * d["wx"] + q * weights) @ (1.0 / den),
            ]
        )
        return float(total), grad

    def fit(
        self,
        frequency: ArrayLike,
        monetary_value: ArrayLike,
        weights: ArrayLike | None = None,
        aggregate: bool = True,
    ) -> GammaGammaFitter:
        """Fit on repeat buyers (frequency > 0, monetary_value > 0); returns self."""
        x, m = _check_spend(frequency, monetary_value)
        w = None if weights is None else as_float_array("weights", weights)
        keep = (x > 0) & (m > 0)
        if keep.sum() < 2:
            raise ValueError("Gamma-Gamma needs at least 2 repeat buyers with positive spend")
        x, m = x[keep], m[keep]
        w = None if w is None else w[keep]
        theta0 = np.log([1.0, 2.0, float(np.mean(m))])
        return self._fit_arrays([x, m], w, theta0, aggregate)

    def conditional_expected_average_profit(
        self, frequency: ArrayLike, monetary_value: ArrayLike
    ) -> np.ndarray:
        """E[spend per transaction | x, m_x] = (gamma + x m_x) p / (p x + q - 1)."""
        p, q, g = self._check_fitted()
        if q <= 1:
            raise ValueError(f"mean spend undefined for q = {q:.3g} <= 1")
        x, m = _check_spend(frequency, monetary_value)
        m = np.where(x > 0, m, 0.0)
        return (g + x * m) * p / (p * x + q - 1.0)

    def expected_average_profit_interval(
        self, frequency, monetary_value, alpha=0.1, n_draws=200, random_state=0
    ):
        """(lower, upper) interval of the expected average profit from parameter draws."""
        return self.draw_quantiles(
            lambda mdl: mdl.conditional_expected_average_profit(frequency, monetary_value),
            alpha,
            n_draws,
            random_state,
        )
