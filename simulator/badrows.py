"""Optional invalid rows for demonstrating validation and quarantine (``--bad-rows RATE``).

Bad rows are *extra* corrupted copies of real rows, appended to the day's frame, so the clean
data (and the ground truth) is the same with or without them. They use their own random
stream: switching them on does not change any other record.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# (column, bad value) choices per source; every one breaks a contract rule (None = missing).
CORRUPTIONS: dict[str, tuple[tuple[str, object], ...]] = {
    "customers": (
        ("customer_id", None),
        ("signed_up_at", "not-a-timestamp"),
        ("country", "Germany"),
    ),
    "orders": (
        ("order_total", -19.99),
        ("status", "lost_in_transit"),
        ("ordered_at", "2024-13-45T99:00:00"),
        ("order_id", None),
        ("currency", "euro"),
        ("item_count", -1),
    ),
    "reviews": (
        ("rating", 7),
        ("rating", 0),
        ("created_at", "yesterday"),
        ("review_id", None),
    ),
    "surveys": (
        ("score", 11),
        ("score", -1),
        ("responded_at", "n/a"),
        ("customer_id", None),
    ),
    "checkouts": (
        ("cart_value", -5.0),
        ("started_at", "31/12/2024 10:00"),
        ("checkout_id", None),
    ),
}


def inject_bad_rows(
    frames: dict[str, pd.DataFrame], rng: np.random.Generator, rate: float
) -> dict[str, pd.DataFrame]:
    """Append about ``rate * len(frame)`` corrupted rows to each frame.

    Parameters
    ----------
    frames : dict of pandas.DataFrame
        The day's clean frames per source.
    rng : numpy.random.Generator
        Dedicated random stream.
    rate : float
        Expected number of bad rows per clean row.

    Returns
    -------
    dict of pandas.DataFrame
        New frames; the corrupted rows come last.
    """
    out = {}
    for source, df in frames.items():
        k = int(rng.binomial(len(df), rate)) if len(df) else 0
        if k == 0:
            out[source] = df
            continue
        bad = df.iloc[rng.integers(0, len(df), size=k)].reset_index(drop=True)
        choices = CORRUPTIONS[source]
        which = rng.integers(0, len(choices), size=k)
        for j, (column, value) in enumerate(choices):
            rows = np.flatnonzero(which == j)
            if rows.size:
                if (value is None or isinstance(value, str)) and bad[column].dtype != object:
                    bad[column] = bad[column].astype(object)
                bad.loc[rows, column] = value
        out[source] = pd.concat([df, bad], ignore_index=True)
    return out
