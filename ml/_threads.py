"""Limit OpenMP threads around scikit-learn calls (gradient boosting on a shared machine)."""

from contextlib import AbstractContextManager, nullcontext

from threadpoolctl import threadpool_limits


def limit_threads(n_threads: int | None) -> AbstractContextManager:
    """A context limiting OpenMP threads to ``n_threads``; no limit when None."""
    if n_threads is None:
        return nullcontext()
    return threadpool_limits(limits=n_threads, user_api="openmp")
