"""Churn model: gradient boosting on point-in-time features stacked over past cutoffs.

Training and evaluation protocol (all at fixed cutoffs, never a random split across time):

* Training as of a date ``A`` uses the ``n_cutoffs`` cutoffs ``A - horizon - k * step``
  (k = 0..n-1), whose labels have matured by ``A``; labels are computed from the data known
  at ``A`` only. The gradient boosting model is fitted on all cutoffs but the latest and is
  calibrated (isotonic, or sigmoid when fewer than 1000 rows) on the latest one.
* Evaluation (``metrics_``) is a backtest at ``E = as_of - horizon``, the latest cutoff whose
  labels have matured: the same procedure is run as of ``E`` (cutoffs ``E - horizon - k *
  step``), scored at ``E`` and compared with the labels observed in ``(E, as_of]``. Training
  labels therefore never overlap the evaluation window (an embargo of one horizon).
* The model kept for scoring (``model_``) is then refitted as of ``as_of`` on its cutoffs,
  the latest of which is ``E`` itself.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator

from ml._threads import limit_predict_threads, limit_threads
from ml.data import LifecycleData, to_timestamp
from ml.features import DAY, build_features, churn_labels
from ml.metrics import feature_importances, score_report

MIN_ROWS = 50  # cutoffs with fewer labelled customers (or one class only) are skipped
REFERENCE_ROWS = 20_000  # rows of training features kept with the model for drift checks


class ChurnModel:
    """Churn classifier: P(no order in the next ``horizon_days``) per customer.

    Parameters
    ----------
    horizon_days : int
        Churn horizon in days.
    n_cutoffs : int
        Number of past cutoffs stacked for training.
    cutoff_step_days : int
        Days between consecutive training cutoffs.
    random_state : int
        Seed of the gradient boosting model.
    max_iter, learning_rate : int, float
        Gradient boosting settings (no early stopping: it would split rows at random).
    n_threads : int or None
        OpenMP threads for gradient boosting (None: the library default, all cores). On a
        busy machine 1 is often much faster for small data (no oversubscription). Scoring
        100 000 customers or more uses every core.

    Attributes
    ----------
    model_ : estimator
        Calibrated classifier used by :meth:`predict_proba`.
    feature_names_ : list of str
        Feature columns, in model order (missing ones are filled with 0 when scoring).
    cutoffs_ : list of pandas.Timestamp
        Training cutoffs of ``model_`` (ascending; the last one is the calibration slice).
    eval_cutoff_ : pandas.Timestamp
        Cutoff of the backtest behind ``metrics_``.
    eval_frame_ : pandas.DataFrame
        The held-out evaluation rows: customer_id, churned, churn_probability and the
        baseline scores (recency_days, btyd_p_no_purchase).
    metrics_ : dict
        Backtest metrics of the model and of the baselines on the same rows.
    feature_importances_ : pandas.Series
        Permutation importance (drop of ROC AUC) of each feature on the held-out rows,
        descending.
    reference_features_ : pandas.DataFrame
        Features at the latest training cutoff (at most ``REFERENCE_ROWS`` rows): the
        reference of the drift measure of later scoring nights.
    """

    def __init__(
        self,
        horizon_days: int = 90,
        n_cutoffs: int = 4,
        cutoff_step_days: int = 30,
        random_state: int = 0,
        max_iter: int = 200,
        learning_rate: float = 0.05,
        n_threads: int | None = None,
    ) -> None:
        self.horizon_days = horizon_days
        self.n_cutoffs = n_cutoffs
        self.cutoff_step_days = cutoff_step_days
        self.random_state = random_state
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.n_threads = n_threads

    def _threads(self):
        return limit_threads(self.n_threads)

    # -- training ---------------------------------------------------------------------------
    def _features(self, data: LifecycleData, cutoff: pd.Timestamp) -> pd.DataFrame:
        if cutoff not in self._cache:
            self._cache[cutoff] = build_features(data, cutoff, self.horizon_days)
        return self._cache[cutoff]

    def _train_as_of(self, data: LifecycleData, as_of: pd.Timestamp):
        """Fit + calibrate on the cutoffs matured by ``as_of``; return (model, names, cutoffs)."""
        h, step = self.horizon_days * DAY, self.cutoff_step_days * DAY
        slices = []
        for k in reversed(range(self.n_cutoffs)):
            cutoff = as_of - h - k * step
            X = self._features(data, cutoff)
            if len(X) < MIN_ROWS:
                continue
            y = churn_labels(data, cutoff, self.horizon_days, as_of=as_of).reindex(X.index)
            if y.nunique() < 2:
                continue
            slices.append((cutoff, X, y))
        if not slices:
            raise ValueError(f"no usable training cutoff as of {as_of}: not enough history")
        names = sorted(set().union(*(X.columns for _, X, _ in slices)))
        frames = [(X.reindex(columns=names, fill_value=0.0), y) for _, X, y in slices]
        base_frames, calib = (frames[:-1], frames[-1]) if len(frames) > 1 else (frames, None)
        X_tr = pd.concat([X for X, _ in base_frames])
        y_tr = pd.concat([y for _, y in base_frames])
        base = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=self.random_state,
        ).fit(X_tr.to_numpy(), y_tr.to_numpy())
        if calib is None:
            warnings.warn("one usable cutoff only: model is not calibrated", stacklevel=3)
            return base, names, [c for c, _, _ in slices]
        method = "isotonic" if len(calib[1]) >= 1000 else "sigmoid"
        model = CalibratedClassifierCV(FrozenEstimator(base), method=method)
        model.fit(calib[0].to_numpy(), calib[1].to_numpy())
        return model, names, [c for c, _, _ in slices]

    def fit(self, data: LifecycleData, as_of: object) -> ChurnModel:
        """Backtest at ``as_of - horizon`` (fills ``metrics_``), then fit as of ``as_of``.

        Only data known at ``as_of`` is used (``data.as_of(as_of)``).
        """
        with self._threads():
            return self._fit(data, to_timestamp(as_of))

    def _fit(self, data: LifecycleData, as_of: pd.Timestamp) -> ChurnModel:
        known = data.as_of(as_of)
        self._cache: dict[pd.Timestamp, pd.DataFrame] = {}
        eval_cutoff = as_of - self.horizon_days * DAY
        model, names, train_cutoffs = self._train_as_of(known, eval_cutoff)
        X_eval = self._features(known, eval_cutoff)
        y_eval = churn_labels(known, eval_cutoff, self.horizon_days, as_of=as_of)
        y_eval = y_eval.reindex(X_eval.index)
        prob = model.predict_proba(X_eval.reindex(columns=names, fill_value=0.0).to_numpy())[:, 1]
        self.metrics_ = self._evaluate(y_eval.to_numpy(), prob, X_eval)
        self.metrics_["n_train_rows_backtest"] = float(
            sum(len(self._features(known, c)) for c in train_cutoffs)
        )
        self.eval_cutoff_ = eval_cutoff
        # Permutation importance (ROC AUC drop) on the held-out rows: the calibrated model
        # has no impurity importances, and held-out rows show what generalises.
        labelled = y_eval.notna().to_numpy()
        self.feature_importances_ = feature_importances(
            model,
            X_eval.reindex(columns=names, fill_value=0.0)[labelled],
            y_eval.to_numpy()[labelled].astype(int),
            scoring="roc_auc",
            max_rows=3000,
        )
        # The held-out rows, for evaluation plots and the model card.
        self.eval_frame_ = pd.DataFrame(
            {
                "customer_id": X_eval.index.astype(object),
                "churned": y_eval.to_numpy(),
                "churn_probability": prob,
                "recency_days": X_eval["recency_days"].to_numpy(),
                "btyd_p_no_purchase": X_eval.get(
                    "btyd_p_no_purchase", pd.Series(np.nan, index=X_eval.index)
                ).to_numpy(),
            }
        )
        self.model_, self.feature_names_, self.cutoffs_ = self._train_as_of(known, as_of)
        reference = self._features(known, self.cutoffs_[-1])
        n = min(len(reference), REFERENCE_ROWS)
        self.reference_features_ = reference.sample(n=n, random_state=self.random_state)
        del self._cache
        return self

    @staticmethod
    def _evaluate(y: np.ndarray, prob: np.ndarray, X: pd.DataFrame) -> dict:
        metrics = {"n_eval": float(len(y)), "churn_rate_eval": float(np.mean(y))}
        metrics.update(score_report(y, prob))
        metrics.update(
            score_report(y, X["recency_days"].to_numpy(), "baseline_recency_", probability=False)
        )
        # Recency relative to the customer's own rhythm; one-time buyers (no gap yet) are
        # measured against the population's median gap instead.
        ratio = X["recency_gap_ratio"].fillna(X["recency_days"] / X["gap_mean"].median())
        metrics.update(score_report(y, ratio.to_numpy(), "baseline_recency_gap_", False))
        if "btyd_p_no_purchase" in X and X["btyd_p_no_purchase"].notna().all():
            p0 = X["btyd_p_no_purchase"].to_numpy()
            metrics.update(score_report(y, p0, "baseline_btyd_"))
        return {k: float(v) for k, v in metrics.items()}

    # -- scoring ----------------------------------------------------------------------------
    def predict_proba(
        self, data: LifecycleData, as_of: object, features: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Churn probability of every customer with a non-cancelled order known at ``as_of``.

        ``features`` may pass ``build_features(data, as_of, horizon_days)`` when the caller
        has it already. Returns a DataFrame with columns ``customer_id`` and
        ``churn_probability``.
        """
        if not hasattr(self, "model_"):
            raise RuntimeError("ChurnModel is not fitted")
        X = features
        if X is None:
            X = build_features(data, to_timestamp(as_of), self.horizon_days)
        out = pd.DataFrame({"customer_id": X.index.astype(object)})
        if len(X) == 0:
            return out.assign(churn_probability=pd.Series(dtype=float))
        X = X.reindex(columns=self.feature_names_, fill_value=0.0)
        with limit_predict_threads(self.n_threads, len(X)):
            out["churn_probability"] = self.model_.predict_proba(X.to_numpy())[:, 1]
        return out
