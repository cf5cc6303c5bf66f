"""Shared machinery: input validation, row aggregation, log-parameter MLE, parameter uncertainty."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.optimize import minimize

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


def aggregate_rows(columns: list[np.ndarray], weights: np.ndarray | None):
    """Collapse identical rows into unique rows with summed weights (the fit is unchanged)."""
    frame = pd.DataFrame({f"c{i}": c for i, c in enumerate(columns)})
    frame["w"] = 1.0 if weights is None else weights
    grouped = frame.groupby([f"c{i}" for i in range(len(columns))], sort=False)["w"].sum()
    grouped = grouped[grouped > 0]
    uniq = [grouped.index.get_level_values(i).to_numpy(dtype=float) for i in range(len(columns))]
    return uniq, grouped.to_numpy(dtype=float)


class Distinct:
    """An array with its distinct values, so costly functions run once per distinct value."""

    def __init__(self, values: np.ndarray):
        self.full = np.asarray(values, dtype=float)
        self.values, self.index = np.unique(self.full, return_inverse=True)

    def apply(self, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        return fn(self.values)[self.index]


def distinct(values) -> Distinct:
    return values if isinstance(values, Distinct) else Distinct(values)


class BaseFitter:
    """Maximum-likelihood fitting on log-parameters with L-BFGS-B and a Hessian-based covariance.

    Subclasses define ``_param_names`` and ``_loglik(params, *data, grad)`` returning per-row
    log-likelihood and, when ``grad`` is true, the per-row gradient w.r.t. the natural parameters
    (shape (n_rows, k)) or ``None`` (a central-difference gradient is then used).
    """

    _param_names: tuple[str, ...] = ()

    def _loglik(self, params: np.ndarray, *data: np.ndarray, grad: bool = False):
        raise NotImplementedError

    def _prepare(self, data: list[np.ndarray]):
        """Hook to precompute data-only structures once per fit (default: none)."""
        return data

    def _objective(self, theta: np.ndarray, data, weights: np.ndarray, total: float):
        params = np.exp(theta)
        ll, g = self._loglik(params, *data, grad=True)
        value = -np.dot(weights, ll) / total
        if g is None:
            g_theta = np.empty_like(theta)
            for j in range(theta.size):
                step = np.zeros_like(theta)
                step[j] = 1e-6
                up = -np.dot(weights, self._loglik(np.exp(theta + step), *data)[0]) / total
                down = -np.dot(weights, self._loglik(np.exp(theta - step), *data)[0]) / total
                g_theta[j] = (up - down) / 2e-6
        else:
            g_theta = -(weights @ g) * params / total
        if not np.isfinite(value):
            return 1e100, np.zeros_like(theta)
        return value, g_theta

    def _fit_arrays(self, data: list[np.ndarray], weights, theta0: np.ndarray, aggregate: bool):
        n_customers = float(data[0].size if weights is None else np.sum(weights))
        if aggregate:
            data, w = aggregate_rows(data, weights)
        else:
            w = np.ones(data[0].size) if weights is None else np.asarray(weights, float)
        if w.size == 0 or n_customers <= 0:
            raise ValueError("no customers to fit")
        total = float(np.sum(w))
        data = self._prepare(data)
        res = self._minimize(theta0, data, w, total)
        self.converged_ = bool(res.success or np.max(np.abs(res.jac)) < 1e-5)
        if not self.converged_:
            warnings.warn(f"{type(self).__name__} did not converge: {res.message}", stacklevel=3)
        self.params_ = dict(zip(self._param_names, np.exp(res.x).tolist(), strict=True))
        self.log_likelihood_ = float(-res.fun * total)
        self.n_customers_ = int(round(n_customers))
        self.n_iter_ = int(res.nit)
        self.covariance_log_ = self._log_covariance(res.x, data, w, total)
        return self

    def _minimize(self, theta0, data, w, total):
        return minimize(
            self._objective,
            theta0,
            args=(data, w, total),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-18.0, 18.0)] * theta0.size,
            options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-9},
        )

    def _log_covariance(self, theta, data, w, total) -> np.ndarray:
        """Inverse numerical Hessian of the total negative LL in log-parameter space."""
        k, h = theta.size, 1e-4
        hess = np.empty((k, k))
        for j in range(k):
            step = np.zeros(k)
            step[j] = h
            g_up = self._objective(theta + step, data, w, total)[1]
            g_dn = self._objective(theta - step, data, w, total)[1]
            hess[:, j] = (g_up - g_dn) * total / (2 * h)
        hess = 0.5 * (hess + hess.T)
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
        return np.exp(draws)

    def with_params(self, params: np.ndarray | dict) -> BaseFitter:
        """A copy of this fitted model with other parameter values (used for draws)."""
        other = copy.copy(self)
        if not isinstance(params, dict):
            params = dict(zip(self._param_names, np.asarray(params, float).tolist(), strict=True))
        other.params_ = params
        return other

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
        lower, upper = np.nanquantile(sims, [alpha / 2, 1 - alpha / 2], axis=0)
        return lower, upper


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
