"""Churn and customer-lifetime-value models (pure Python: pandas, numpy, scipy, scikit-learn).

Importing ``ml`` switches on pandas' Copy-on-Write for the process. It is pandas 3's only mode
(dagster-duckdb-pandas keeps this project on pandas 2), and the models' frame code is written
for it: derived frames share their parents' columns until written to, instead of each
``join``/``astype``/``set_axis`` copying and consolidating a million-row frame (~4.5 s of a
1M-customer scoring night).
"""

import pandas as pd

pd.set_option("mode.copy_on_write", True)
