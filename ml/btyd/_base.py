"""Shared machinery: input validation, row aggregation, log-parameter MLE, parameter uncertainty."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from ml.btyd._optim import BOUND, WARM_CUSTOMERS, WARM_ROWS, hessian, single_blas_thread, solve
from ml.btyd._rows import Distinct, compress_rows

ArrayLike = np.ndarray | pd.Series | list | float | int


def as_float_array(name: str, values: ArrayLike) -> np.ndarray:
    """Convert to a 1-d float array; ValueError naming ``name`` if it has NaN/inf or negatives."""
    arr = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(arr < 0):
        raise ValueError(f"{name} contains negative values")
    return arr


def check_rfm(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike):
    """Validate (frequency, recency, T) and return them as float arrays.

    Raises
    ------
    ValueError
        On NaN/inf, negative values, non-integer frequency, recency > T, recency != 0 for
        frequency == 0, or mismatched lengths; the message names the problem.
    """
    x = as_float_array("frequency", frequency)
    tx = as_float_array("recency", recency)
    t_end = as_float_array("T", T)
    if not (x.size == tx.size == t_end.size):
        raise ValueError(
            "frequency, recency and T must have the same length "
            f"({x.size}, {tx.size}, {t_end.size})"
        )
    if np.any(x != np.round(x)):
        raise ValueError("frequency must be a whole number of repeat purchases")
    if np.any(tx > t_end):
        raise ValueError(f"recency > T for {int(np.sum(tx > t_end))} customer(s)")
    if np.any((x == 0) & (tx != 0)):
        raise ValueError("recency must be 0 when frequency is 0")
    return x, tx, t_end


class BaseFitter:
    """Maximum-likelihood fitting on log-parameters with a Hessian-based covariance.

    Identical rows are compressed into weighted unique rows (:mod:`ml.btyd._rows`) and the
    optimiser is :func:`ml.btyd._optim.solve`. Subclasses define ``_param_names`` and
    ``_loglik(params, *data, grad)`` returning per-row log-likelihood and, when ``grad`` is true,
    the per-row gradient w.r.t. the natural parameters (shape (n_rows, k)) or ``None`` (a
    central-difference gradient is then used); they may override ``_prepare`` and
    ``_weighted_loglik`` with a faster weighted total.
    """

    _param_names: tuple[str, ...] = ()

    def _loglik(self, params: np.ndarray, *data: np.ndarray, grad: bool = False):
        raise NotImplementedError

    def _prepare(self, data: list[Distinct], weights: np.ndarray):
        """Hook: data-only structures computed once per fit (default: the full columns)."""
        return [d.full for d in data]

    def _weighted_loglik(self, params: np.ndarray, data, weights: np.ndarray):
        """(sum_i w_i ll_i, its gradient w.r.t. the natural parameters or ``None``)."""
        ll, g = self._loglik(params, *data, grad=True)
        return float(np.dot(weights, ll)), (None if g is None else g.T @ weights)

    def _objective(self, theta: np.ndarray, data, weights: np.ndarray, total: float):
        """Mean negative log-likelihood and its gradient in log-parameter space."""
        params = np.exp(theta)
        value, g = self._weighted_loglik(params, data, weights)
        if g is None:
            g_theta = np.empty_like(theta)
            for j in range(theta.size):
                step = np.zeros_like(theta)
                step[j] = 1e-6
                up = self._weighted_loglik(np.exp(theta + step), data, weights)[0]
                down = self._weighted_loglik(np.exp(theta - step), data, weights)[0]
                g_theta[j] = -(up - down) / 2e-6 / total
        else:
            g_theta = -g * params / total
        if not np.isfinite(value):
            return 1e100, np.zeros_like(theta)
        return -value / total, g_theta

    def _fit_arrays(self, data: list[np.ndarray], weights, theta0: np.ndarray, aggregate: bool):
        if aggregate:
            cols, w = compress_rows(data, weights)
        else:
            cols = [Distinct(v) for v in data]
            w = np.ones(data[0].size) if weights is None else np.asarray(weights, float)
        total = float(np.sum(w))
        if w.size == 0 or total <= 0:
            raise ValueError("no customers to fit")
        prepared = self._prepare(cols, w)
        subsample = None
        if w.size > WARM_ROWS and total > 4 * WARM_CUSTOMERS:
            subsample = self._subsample_args(cols, w, WARM_CUSTOMERS / total)
        with single_blas_thread():
            res = solve(self._objective, theta0, (prepared, w, total), subsample)
            self.covariance_log_ = self._log_covariance(res.x, prepared, w, total)
        self.converged_ = bool(res.success or np.max(np.abs(res.jac)) < 1e-5)
        if not self.converged_:
            warnings.warn(f"{type(self).__name__} did not converge: {res.message}", stacklevel=3)
        self.params_ = dict(zip(self._param_names, np.exp(res.x).tolist(), strict=True))
        self.log_likelihood_ = float(-res.fun * total)
        self.n_customers_ = int(round(total))
        self.n_unique_rows_ = int(w.size)
        self.n_iter_ = int(res.nit)
        return self

    def _subsample_args(self, cols: list[Distinct], w: np.ndarray, fraction: float):
        """Objective arguments for a random customer subsample (Poisson-thinned weights)."""

        def make():
            sub = np.random.default_rng(0).poisson(w * fraction).astype(float)
            rows = np.flatnonzero(sub)
            sub_w = sub[rows]
            return self._prepare([c.take(rows) for c in cols], sub_w), sub_w, float(sub_w.sum())

        return make

    def _log_covariance(self, theta, data, w, total) -> np.ndarray:
        """Inverse numerical Hessian of the total negative LL in log-parameter space."""
        hess = hessian(self._objective, theta, (data, w, total)) * total
        try:
            cov = np.linalg.inv(hess)
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            warnings.warn("Hessian not positive definite; using pseudo-inverse", stacklevel=3)
            vals, vecs = np.linalg.eigh(hess)
            cov = (vecs / np.maximum(vals, 1e-8)) @ vecs.T
        return cov

    # ----- fitted-state helpers -----
    def _check_fitted(self) -> np.ndarray:
        if not hasattr(self, "params_"):
            raise ValueError(f"{type(self).__name__} is not fitted yet; call fit first")
        return np.array([self.params_[n] for n in self._param_names])

    @property
    def standard_errors_(self) -> dict[str, float]:
        """Delta-method standard errors of the natural parameters."""
        p = self._check_fitted()
        se = p * np.sqrt(np.diag(self.covariance_log_))
        return dict(zip(self._param_names, se.tolist(), strict=True))

    def sample_params(self, n_draws: int = 200, random_state: int | None = 0) -> np.ndarray:
        """Draw parameter vectors (n_draws, k) from the asymptotic normal in log space."""
        p = self._check_fitted()
        rng = np.random.default_rng(random_state)
        draws = rng.multivariate_normal(np.log(p), self.covariance_log_, size=n_draws)
        return np.exp(np.clip(draws, -BOUND, BOUND))  # the fit's parameter box

    def with_params(self, params: np.ndarray | dict) -> BaseFitter:
        """A copy of this fitted model with other parameter values (used for draws)."""
        other = copy.copy(self)
        if not isinstance(params, dict):
            params = dict(zip(self._param_names, np.asarray(params, float).tolist(), strict=True))
        other.params_ = params
        return other

    def delta_moments(
        self, fn: Callable[[BaseFitter], np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(value, variance) of ``fn(model)`` by the delta method in log-parameter space.

        The gradient is a central difference with a step of one standard error per
        parameter (at most 0.1, at least 1e-6 in log space): ``2 k + 1`` evaluations of
        ``fn`` for ``k`` parameters, against one per draw for :meth:`draw_quantiles`. The
        normal approximation behind it is accurate when the fit rests on many customers,
        which is when draws are costly.
        """
        theta = np.log(self._check_fitted())
        value = np.asarray(fn(self), dtype=np.float64)
        steps = np.clip(np.sqrt(np.diag(self.covariance_log_)), 1e-6, 0.1)
        grads = np.empty((theta.size, *value.shape))
        for j, h in enumerate(steps):
            up, down = theta.copy(), theta.copy()
            up[j] += h
            down[j] -= h
            hi = np.asarray(fn(self.with_params(np.exp(up))), dtype=np.float64)
            lo = np.asarray(fn(self.with_params(np.exp(down))), dtype=np.float64)
            grads[j] = (hi - lo) / (2.0 * h)
        g = grads.reshape(theta.size, -1)
        variance = np.einsum("in,ij,jn->n", g, self.covariance_log_, g).reshape(value.shape)
        return value, np.maximum(variance, 0.0)

    def draw_quantiles(
        self, fn: Callable[[BaseFitter], np.ndarray], alpha=0.1, n_draws=200, random_state=0
    ):
        """(lower, upper) percentiles of ``fn(model)`` over parameter draws."""
        sims = np.stack(
            [
                np.asarray(fn(self.with_params(p)), dtype=np.float64)
                for p in self.sample_params(n_draws, random_state)
            ]
        )
        return draw_bounds(sims, alpha)


class TransactionFitter(BaseFitter):
    """Common API of the purchase-count models (BG/NBD, MBG/NBD, Pareto/NBD)."""

    def _theta0(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        weights: ArrayLike | None = None,
        aggregate: bool = True,
    ):
        """Fit by maximum likelihood.

        Parameters
        ----------
        frequency, recency, T : array_like
            Repeat purchases x, time of last purchase t_x and age T (same time unit), per customer.
        weights : array_like, optional
            Number of customers sharing each (x, t_x, T) row.
        aggregate : bool, default True
            Collapse identical rows into weights before fitting (same MLE, much faster).

        Returns
        -------
        self
        """
        x, tx, t_end = check_rfm(frequency, recency, T)
        w = None if weights is None else as_float_array("weights", weights)
        if w is not None and w.size != x.size:
            raise ValueError("weights must have the same length as frequency")
        return self._fit_arrays([x, tx, t_end], w, self._theta0(x, tx, t_end), aggregate)

    def predict(self, t, frequency, recency, T) -> np.ndarray:
        """Conditional expected number of purchases in (T, T + t]."""
        raise NotImplementedError

    def predict_cumulative(self, times, frequency, recency, T) -> np.ndarray:
        """:meth:`predict` for each horizon of ``times``: an array of shape
        (len(times), n customers). Models override it to share the work that does not
        depend on the horizon."""
        return np.array([self.predict(t, frequency, recency, T) for t in times], dtype=float)

    def predict_interval(
        self, t, frequency, recency, T, alpha: float = 0.1, n_draws: int = 200, random_state=0
    ) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) ``1 - alpha`` interval of ``predict`` from parameter uncertainty.

        Parameters are drawn from the asymptotic normal of the MLE in log space (inverse numerical
        Hessian), predictions recomputed per draw, and percentiles taken per customer.
        """
        x, tx, t_end = check_rfm(frequency, recency, T)
        return self.draw_quantiles(
            lambda m: m.predict(t, x, tx, t_end), alpha, n_draws, random_state
        )


def draw_bounds(sims: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) ``alpha``-interval over the draws (axis 0) of ``sims``. Draws that are
    NaN everywhere (parameters without a finite answer) are dropped first, so the fast
    vectorised quantile applies; scattered NaN fall back to ``nanquantile``."""
    sims = sims[~np.isnan(sims).all(axis=1)]
    if len(sims) == 0:
        nan = np.full(sims.shape[1:], np.nan)
        return nan, nan.copy()
    q = np.nanquantile if np.isnan(sims).any() else np.quantile
    lower, upper = q(sims, [alpha / 2, 1 - alpha / 2], axis=0)
    return lower, upper
