"""Quality gate: may a candidate model replace the current champion?

The rule (all checks run, every failure is reported with its numbers):

1. the candidate's primary metric is a number;
2. it beats every baseline by more than ``min_gain_over_baseline`` (a baseline whose value is
   missing/NaN cannot be judged and is reported, not failed);
3. it is not worse than the champion's primary metric by more than ``tolerance``
   (no champion: the check passes);
4. optional ``limits``: upper bounds on other metrics (e.g. ``{"ece": 0.05}``).

The churn metrics of :class:`ml.churn.ChurnModel` name baselines ``baseline_<name>_<metric>``;
:func:`baselines_from_metrics` extracts them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

BASELINE_PREFIX = "baseline_"


@dataclass(frozen=True)
class GateResult:
    """Outcome of :func:`gate`: ``passed`` and one human-readable line per check."""

    passed: bool
    reasons: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def summary(self) -> str:
        return ("PASSED: " if self.passed else "FAILED: ") + "; ".join(self.reasons)


def baselines_from_metrics(metrics: Mapping[str, float], primary: str = "roc_auc") -> dict:
    """``{"recency": 0.71, "btyd": 0.74, ...}`` from keys ``baseline_<name>_<primary>``."""
    suffix = f"_{primary}"
    return {
        k[len(BASELINE_PREFIX) : -len(suffix)]: float(v)
        for k, v in metrics.items()
        if k.startswith(BASELINE_PREFIX) and k.endswith(suffix)
    }


def _num(value: object) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return out


def gate(
    candidate_metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
    *,
    baselines: Mapping[str, float] | None = None,
    primary: str = "roc_auc",
    min_gain_over_baseline: float = 0.0,
    tolerance: float = 0.005,
    higher_is_better: bool = True,
    limits: Mapping[str, float] | None = None,
) -> GateResult:
    """Decide whether a candidate may become champion.

    Parameters
    ----------
    candidate_metrics, champion_metrics : mapping
        Metrics of the candidate and of the current champion (None: no champion yet).
    baselines : mapping name -> value of ``primary``, optional
        Default: :func:`baselines_from_metrics` of the candidate's metrics.
    primary : str
        Metric compared (e.g. ``"roc_auc"``; ``"gini"`` for CLV).
    min_gain_over_baseline : float
        Required margin over every baseline (strictly greater).
    tolerance : float
        Allowed shortfall against the champion.
    higher_is_better : bool
        Direction of ``primary`` (False for errors such as Brier).
    limits : mapping metric -> upper bound, optional
        Further hard limits, e.g. ``{"ece": 0.05}``.

    Returns
    -------
    GateResult
    """
    sign = 1.0 if higher_is_better else -1.0
    word = "above" if higher_is_better else "below"
    reasons: list[str] = []
    ok = True
    cand = _num(candidate_metrics.get(primary))
    if math.isnan(cand):
        return GateResult(
            False, [f"candidate has no {primary} (got {candidate_metrics.get(primary)!r})"]
        )
    if baselines is None:
        baselines = baselines_from_metrics(candidate_metrics, primary)
    if not baselines:
        reasons.append(f"no baselines to compare {primary} with")
    for name, value in sorted(baselines.items()):
        value = _num(value)
        if math.isnan(value):
            reasons.append(f"baseline {name}: {primary} not available, not judged")
            continue
        gain = sign * (cand - value)
        beat = gain > min_gain_over_baseline
        ok &= beat
        verdict = "beats" if beat else "does not beat"
        reasons.append(
            f"{verdict} baseline {name}: {primary} {cand:.4f} vs {value:.4f} "
            f"(gain {gain:+.4f}, required > {min_gain_over_baseline:.4f} {word})"
        )
    if champion_metrics is None:
        reasons.append("no current champion")
    else:
        champ = _num(champion_metrics.get(primary))
        if math.isnan(champ):
            reasons.append(f"champion has no {primary}, not judged")
        else:
            delta = sign * (cand - champ)
            fine = delta >= -tolerance
            ok &= fine
            verdict = "within tolerance of" if fine else "worse than"
            reasons.append(
                f"{verdict} champion: {primary} {cand:.4f} vs {champ:.4f} "
                f"(delta {delta:+.4f}, tolerance {tolerance:.4f})"
            )
    for metric, bound in sorted((limits or {}).items()):
        value = _num(candidate_metrics.get(metric))
        fine = not math.isnan(value) and value <= bound
        ok &= fine
        reasons.append(f"{metric} {value:.4f} {'<=' if fine else 'exceeds'} limit {bound:.4f}")
    return GateResult(bool(ok), reasons)
