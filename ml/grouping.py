"""Grouping by integer keys without pandas hashing them again on every ``groupby``.

The models group millions of rows by customer key (dense integers, see
:class:`ml.data.LifecycleData`). Given a Series as key, pandas factorizes it - a hash pass and
a sort - on every grouping, which cost more than the reductions themselves. These helpers
number the groups once and hand pandas a Categorical it uses as is, so its own reductions
(compensated sums included) run unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.typing import DataFrameGroupBy, SeriesGroupBy


def coded_grouper(codes: np.ndarray, n_groups: int) -> pd.Categorical:
    """A grouping key from precomputed group numbers ``codes`` (``0 .. n_groups - 1``, each
    present): ``groupby(key, observed=False)`` groups by the numbers as they are, the groups
    in number order. Any other key is factorized by pandas on every grouping, a hash pass
    and a sort that cost more than the reductions themselves on millions of rows."""
    return pd.Categorical.from_codes(codes, categories=pd.RangeIndex(n_groups), validate=False)


def key_groupby(
    obj: pd.Series | pd.DataFrame, keys: pd.Series
) -> tuple[SeriesGroupBy | DataFrameGroupBy, pd.Index]:
    """(``obj.groupby(keys)``, the sorted distinct keys) for integer keys; the groups are
    numbered by a table of the keys present when they are dense and non-negative (the
    customer keys: no hashing, see :func:`coded_grouper`), else by ``pd.factorize``. The
    groupby's results are indexed by group number: ``set_axis`` the keys."""
    values = keys.to_numpy()
    if values.size and values.dtype.kind in "iu" and 0 <= values.min() <= values.max() < 1 << 26:
        present = np.bincount(values) > 0
        codes, uniques = (np.cumsum(present) - 1)[values], np.flatnonzero(present)
    else:
        codes, uniques = pd.factorize(values, sort=True)
    grouper = coded_grouper(codes, len(uniques))
    return obj.groupby(grouper, observed=False), pd.Index(uniques, dtype=values.dtype)
