"""BG/NBD (Fader, Hardie & Lee 2005) and MBG/NBD (Batislam, Denizel & Filiztekin 2007)."""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from ml.btyd._base import TransactionFitter, check_rfm
from ml.btyd._rows import Distinct, distinct

POINT_MASS_AB = 1e4  # a + b from which predict uses the point-mass form (see predict)


class BetaGeoFitter(TransactionFitter):
    """BG/NBD: Poisson purchases at rate lambda ~ Gamma(r, alpha); after each repeat purchase the
    customer drops out with probability p ~ Beta(a, b).

    Fitted attributes: ``params_`` (r, alpha, a, b), ``log_likelihood_``, ``n_customers_``,
    ``covariance_log_`` (covariance of the log-parameters), ``converged_``.
    """

    _param_names = ("r", "alpha", "a", "b")
    _k = 0.0  # MBG/NBD: 1 (drop-out also possible at the first purchase)

    def _theta0(self, x, tx, T):
        return np.log([1.0, max(float(np.mean(T)), 1e-3) / 4.0, 1.0, 2.0])

    def _prepare(self, data: list[Distinct], weights: np.ndarray) -> dict:
        """Weight sums per distinct x and T, and the rows that need the drop-out term.

        Only customers with a repeat purchase (all customers for MBG/NBD) have the second
        likelihood term; every other quantity of the log-likelihood and its gradient is a
        weighted sum over distinct x or distinct T, precomputed here.
        """
        x, tx, t_end = data
        xv, tv = x.values, t_end.values
        rows = np.flatnonzero(x.full > 0) if self._k == 0 else np.arange(len(x))
        ws = weights[rows]
        return {
            "x": xv,
            "tx": tx.values,
            "T": tv,
            "W": float(weights.sum()),
            "Wx": np.bincount(x.index, weights, xv.size),
            "WT": np.bincount(t_end.index, weights, tv.size),
            "WxT": np.bincount(t_end.index, weights * x.full, tv.size),
            "ix": x.index[rows],
            "itx": tx.index[rows],
            "iT": t_end.index[rows],
            "xs": x.full[rows],
            "ws": ws,
        }

    def _weighted_loglik(self, params, data, weights):
        """Total weighted log-likelihood and gradient; O(1) special functions per distinct x."""
        r, alpha, a, b = params
        k, d = self._k, data
        xv = d["x"]
        blab, psi_ab = betaln(a, b), digamma(a + b)
        has3 = (xv > 0) | (k > 0)
        b2 = betaln(a, b + xv + k) - blab
        b3 = np.where(has3, betaln(a + 1, b + np.maximum(xv, 1 - k) + k - 1) - blab, -np.inf)
        log_t, log_tx = np.log(alpha + d["T"]), np.log(alpha + d["tx"])
        head = gammaln(r + xv) - gammaln(r) + r * np.log(alpha) + b2
        total = d["Wx"] @ head - r * (d["WT"] @ log_t) - d["WxT"] @ log_t
        # drop-out term, per row: log(1 + exp(a3 - a2)) and its weight w3 = expit(a3 - a2)
        gap = log_tx[d["itx"]]
        gap -= log_t[d["iT"]]
        rx = d["xs"] + r
        diff = np.where(has3, b3 - b2, 0.0)[d["ix"]]
        diff -= rx * gap
        e = np.abs(diff)
        np.negative(e, out=e)
        np.exp(e, out=e)  # exp(-|diff|) in (0, 1]: softplus(diff) = max(diff, 0) + log1p(e)
        softplus = np.log1p(e)
        softplus += np.maximum(diff, 0.0)
        total += d["ws"] @ softplus
        w3 = diff - softplus  # log expit(diff)
        np.exp(w3, out=w3)
        w3 *= d["ws"]
        v3 = np.bincount(d["ix"], w3, xv.size)
        inv_t, inv_tx = 1.0 / (alpha + d["T"]), 1.0 / (alpha + d["tx"])
        w3rx = w3 * rx
        psi_abx = digamma(a + b + xv + k)
        psi_b3 = np.where(has3, digamma(b + np.maximum(xv, 1 - k) + k - 1) - psi_abx, 0.0)
        grad = np.array(
            [
                d["Wx"] @ (digamma(r + xv) - digamma(r) + np.log(alpha))
                - d["WT"] @ log_t
                - w3 @ gap,
                r / alpha * d["W"]
                - (r * d["WT"] + d["WxT"]) @ inv_t
                - np.bincount(d["itx"], w3rx, inv_tx.size) @ inv_tx
                + np.bincount(d["iT"], w3rx, inv_t.size) @ inv_t,
                d["Wx"] @ (digamma(a) - psi_abx)
                + (digamma(a + 1) - digamma(a)) * w3.sum()
                - d["W"] * (digamma(a) - psi_ab),
                (d["Wx"] - v3) @ (digamma(b + xv + k) - psi_abx)
                + v3 @ psi_b3
                - d["W"] * (digamma(b) - psi_ab),
            ]
        )
        return float(total), grad

    def _terms(self, params, x, tx, T, grad=False):
        """Log-likelihood pieces; special functions are evaluated once per distinct x, t_x, T."""
        r, alpha, a, b = params
        k = self._k
        x, tx, T = distinct(x), distinct(tx), distinct(T)
        xf = x.full
        has3 = (xf > 0) | (k > 0)
        blab = betaln(a, b)
        a1 = x.apply(lambda v: gammaln(r + v) - gammaln(r) + r * np.log(alpha))
        log_at = T.apply(lambda v: np.log(alpha + v))
        log_atx = tx.apply(lambda v: np.log(alpha + v))
        a2 = x.apply(lambda v: betaln(a, b + v + k) - blab) - (r + xf) * log_at
        b3 = x.apply(lambda v: betaln(a + 1, b + np.where((v > 0) | (k > 0), v, 1.0) + k - 1))
        a3 = np.where(has3, b3 - blab - (r + xf) * log_atx, -np.inf)
        if not grad:
            return a1, a2, a3
        psi_abx = x.apply(lambda v: digamma(a + b + v + k))
        ab_x = (
            x.apply(lambda v: digamma(r + v) - digamma(r)),
            x.apply(lambda v: digamma(b + v + k)),
            x.apply(
                lambda v: np.where((v > 0) | (k > 0), digamma(b + np.maximum(v, 1 - k) + k - 1), 0)
            ),
        )
        return a1, a2, a3, (xf, has3, log_at, log_atx, psi_abx, ab_x, T.full, tx.full)

    def _loglik(self, params, x, tx, T, grad=False):
        r, alpha, a, b = params
        if not grad:
            a1, a2, a3 = self._terms(params, x, tx, T)
            return a1 + np.logaddexp(a2, a3), None
        a1, a2, a3, (xf, has3, log_at, log_atx, psi_abx, ab_x, tf, txf) = self._terms(
            params, x, tx, T, grad=True
        )
        psi_rx, psi_bx, psi_bx1 = ab_x
        lse = np.logaddexp(a2, a3)
        w3 = np.exp(a3 - lse)
        w2 = 1.0 - w3
        psi_ab = digamma(a + b)
        g = np.empty((xf.size, 4))
        g[:, 0] = psi_rx + np.log(alpha) - w2 * log_at - w3 * log_atx
        g[:, 1] = r / alpha - (r + xf) * (w2 / (alpha + tf) + w3 / (alpha + txf))
        g[:, 2] = (
            w2 * (digamma(a) - psi_abx) + w3 * (digamma(a + 1) - psi_abx) - (digamma(a) - psi_ab)
        )
        g[:, 3] = (
            w2 * (psi_bx - psi_abx)
            + np.where(has3, w3 * (psi_bx1 - psi_abx), 0.0)
            - (digamma(b) - psi_ab)
        )
        return a1 + lse, g

    def conditional_probability_alive(self, frequency, recency, T) -> np.ndarray:
        """P(alive at T | x, t_x, T); exactly 1 for BG/NBD customers with no repeat purchase."""
        params = self._check_fitted()
        x, tx, t_end = check_rfm(frequency, recency, T)
        _, a2, a3 = self._terms(params, x, tx, t_end)
        return expit(a2 - a3)

    def predict(self, t, frequency, recency, T) -> np.ndarray:
        """Conditional expected number of purchases in (T, T + t] given (x, t_x, T).

        E = (a+b+x+k-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x+k; a+b+x+k-1; z)]
        * P(alive), z = t / (alpha+T+t). The 2F1 is Euler-transformed to
        (1-z)^(a-1) 2F1(a+b+k-1-r, a-1; a+b+x+k-1; z), which stays bounded for large x.

        When ``a + b`` is huge (the fit found no heterogeneity in dropout: ``a, b`` in the
        millions are a valid maximum on the boundary) that 2F1 overflows. The Beta posterior
        of the dropout probability ``p`` given alive, Beta(a, b+x+k), is then a point mass
        at ``p = a / (a+b+x+k)``, where E = P(alive) (1 - ((alpha+T)/(alpha+T+p t))^(r+x)) / p
        exactly; its relative error is O(1/(a+b)) (below 1e-4 from ``POINT_MASS_AB`` on). The
        same form replaces any non-finite value of the exact formula.
        """
        return self.predict_cumulative([t], frequency, recency, T)[0]

    def predict_cumulative(self, times, frequency, recency, T) -> np.ndarray:
        """:meth:`predict` for each horizon of ``times`` (P(alive) computed once)."""
        params = self._check_fitted()
        x, tx, t_end = check_rfm(frequency, recency, T)
        times = [np.asarray(t, dtype=float) for t in times]
        if any(np.any(t < 0) or not np.all(np.isfinite(t)) for t in times):
            raise ValueError("t must be finite and non-negative")
        p_alive = self.conditional_probability_alive(x, tx, t_end)
        rows = np.broadcast_shapes(x.shape, *(t.shape for t in times))
        return np.array([self._expected(params, t, x, t_end, p_alive) for t in times]).reshape(
            (len(times), *rows)
        )

    def _expected(self, params, t, x, t_end, p_alive) -> np.ndarray:
        r, alpha, a, b = params
        if abs(a - 1.0) < 1e-7:  # removable singularity at a == 1
            a = 1.0 + 1e-7
        bk = b + self._k
        log_ratio = np.log(alpha + t_end) - np.log(alpha + t_end + t)
        p = a / (a + bk + x)
        log_ratio_p = np.log(alpha + t_end) - np.log(alpha + t_end + p * t)
        point_mass = -np.expm1((r + x) * log_ratio_p) / p * p_alive
        if a + bk >= POINT_MASS_AB:
            return point_mass
        z = -np.expm1(log_ratio)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            hyp = hyp2f1(a + bk - 1 - r, a - 1, a + bk + x - 1, z)
            bracket = -np.expm1((a - 1) * log_ratio + np.log(hyp)) / (a - 1)
            exact = (a + bk + x - 1) * bracket * p_alive
        return np.where(np.isfinite(exact), exact, point_mass)

    def probability_of_zero_purchases(self, t, frequency, recency, T) -> np.ndarray:
        """P(no purchase in (T, T + t] | x, t_x, T).

        Dead customers never buy; an alive one (lambda | alive ~ Gamma(r + x, alpha + T)) cannot
        drop out before buying again, so P = 1 - P(alive) + P(alive) ((alpha+T)/(alpha+T+t))^(r+x).
        """
        r, alpha, _, _ = self._check_fitted()
        x, tx, t_end = check_rfm(frequency, recency, T)
        p_alive = self.conditional_probability_alive(x, tx, t_end)
        log_no_buy = (r + x) * (np.log(alpha + t_end) - np.log(alpha + t_end + np.asarray(t)))
        return 1.0 - p_alive * -np.expm1(log_no_buy)


class ModifiedBetaGeoFitter(BetaGeoFitter):
    """MBG/NBD: like BG/NBD, but the customer may also drop out right after the first purchase, so
    one-time buyers have P(alive) < 1."""

    _k = 1.0
