"""Limit OpenMP threads around scikit-learn calls (gradient boosting on a shared machine)."""

from contextlib import AbstractContextManager, nullcontext

from threadpoolctl import threadpool_limits


def limit_threads(n_threads: int | None) -> AbstractContextManager:
    """A context limiting OpenMP threads to ``n_threads``; no limit when None."""
    if n_threads is None:
        return nullcontext()
    return threadpool_limits(limits=n_threads, user_api="openmp")


# Rows from which prediction uses every core whatever ``n_threads`` says: a fit on a busy
# machine is often faster on one thread, but scoring a million customers on one took twice
# as long as on two.
PARALLEL_PREDICT_ROWS = 100_000


def limit_predict_threads(n_threads: int | None, n_rows: int) -> AbstractContextManager:
    """:func:`limit_threads` for a prediction over ``n_rows`` rows (no limit from
    :data:`PARALLEL_PREDICT_ROWS` rows on)."""
    return limit_threads(None if n_rows >= PARALLEL_PREDICT_ROWS else n_threads)
