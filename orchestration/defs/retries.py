"""Retries with exponential backoff for transient errors only.

Dagster's :class:`~dagster.RetryPolicy` retries a step on *any* exception except
``dg.Failure(allow_retries=False)``. So the policy is paired with :func:`non_transient`,
which wraps a step's body and turns every error that is not transient into a
non-retryable ``dg.Failure``; transient errors pass through unchanged and are retried:

- a DuckDB lock still held after :func:`orchestration.warehouse.connect` waited for it
  (``duckdb.IOException`` "Could not set lock"), or a dbt run that failed on that lock;
- other DuckDB I/O errors and ``OSError`` (``IOError``, timeouts, broken connections),
  except "not found"/"permission denied"/"is a directory" kinds, which a retry cannot fix.

Validation failures (a refused landing file, a failing dbt test, a model-quality gate)
are never retried: they need a person, and retrying only delays the alert.

Apply to a step::

    @dg.asset(..., retry_policy=TRANSIENT_RETRY)
    def my_asset(...):
        with non_transient():
            ...  # generator bodies too: put the ``yield from`` inside the ``with``
"""

import contextlib
from collections.abc import Iterator

import dagster as dg
import duckdb

from orchestration.warehouse import LOCK_MARKERS, is_lock_error

# 5 s, 10 s, 20 s (each +/- up to 100 % jitter so queued runs do not retry in lockstep).
TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

# OSErrors a retry cannot fix.
PERMANENT_OS_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying (see the module docstring)."""
    if is_lock_error(exc):
        return True
    if isinstance(exc, dg.Failure):  # e.g. dagster-dbt's error when dbt hit the DuckDB lock
        return any(m in (exc.description or "") for m in LOCK_MARKERS)
    if isinstance(exc, duckdb.IOException):
        return True
    return isinstance(exc, OSError) and not isinstance(exc, PERMANENT_OS_ERRORS)


@contextlib.contextmanager
def non_transient(*exc_types: type[BaseException]) -> Iterator[None]:
    """Turn errors raised in the block into ``dg.Failure(allow_retries=False)``.

    Parameters
    ----------
    *exc_types
        Convert only these types (e.g. ``LandingFileError``). Without any, convert every
        error that :func:`is_transient` does not accept, including a ``dg.Failure``
        raised with the default ``allow_retries=True`` (such as dagster-dbt's
        ``DagsterDbtCliRuntimeError`` for a failing dbt test).

    Transient errors and Dagster's own control flow (``RetryRequested``) pass unchanged.
    """
    try:
        yield
    except dg.RetryRequested:
        raise
    except Exception as exc:
        if is_transient(exc) and not isinstance(exc, exc_types):
            raise
        if exc_types and not isinstance(exc, exc_types):
            raise
        if isinstance(exc, dg.Failure):
            if not exc.allow_retries:
                raise
            raise dg.Failure(
                description=exc.description, metadata=exc.metadata, allow_retries=False
            ) from exc
        raise dg.Failure(
            description=f"{type(exc).__name__}: {exc} (not retried: not a transient error)",
            allow_retries=False,
        ) from exc
