"""Model registry (ml.registry) and quality gate (ml.gate)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from ml import registry
from ml.data import LifecycleData
from ml.gate import baselines_from_metrics, gate

ROOT = Path(__file__).resolve().parents[1]
METRICS = {
    "roc_auc": 0.81,
    "ece": 0.012,
    "baseline_recency_roc_auc": 0.72,
    "baseline_btyd_roc_auc": 0.78,
}


def _model(seed: int = 0) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, 3))
    return LogisticRegression().fit(X, (X[:, 0] + rng.normal(size=200) > 0).astype(int))


def _register(root: Path, seed: int = 0, as_of: str = "2024-06-30", **kw) -> registry.ModelVersion:
    return registry.register(
        root,
        "churn",
        _model(seed),
        as_of=as_of,
        training_window=("2024-01-01", "2024-04-01"),
        features=["recency_days", "frequency", "btyd_p_no_purchase"],
        metrics={**METRICS, "roc_auc": 0.8 + seed / 100},
        data_fingerprint="sha256:abc",
        params={"max_iter": 200, "seed": seed},
        **kw,
    )


def test_register_and_load_round_trip(tmp_path):
    mv = _register(tmp_path)
    assert mv.path == tmp_path / "churn" / mv.version
    assert mv.version.startswith("churn-20240630-")
    assert {p.name for p in mv.path.iterdir()} == {"model.joblib", "meta.json", "model_card.md"}
    meta = json.loads((mv.path / "meta.json").read_text())
    assert meta["training_window"] == ["2024-01-01T00:00:00", "2024-04-01T00:00:00"]
    assert meta["features"][0] == "recency_days" and meta["metrics"]["roc_auc"] == 0.8
    assert meta["params"] == {"max_iter": 200, "seed": 0}
    loaded = registry.load(tmp_path, "churn", mv.version)
    X = np.random.default_rng(1).normal(size=(20, 3))
    np.testing.assert_array_equal(loaded.predict_proba(X), _model(0).predict_proba(X))
    card = mv.card_path.read_text()
    for text in (
        mv.version,
        "2024-01-01",
        "sha256:abc",
        "baseline btyd",
        "| roc_auc | 0.8000 | 0.7800 | 0.7200 |",
    ):
        assert text in card
    assert "Intended use" in card and "Limitations" in card
    # No temporary folder left behind; the same content again gets a new, suffixed version.
    again = _register(tmp_path)
    assert again.version == f"{mv.version}-2"
    names = [v.version for v in registry.list_versions(tmp_path, "churn")]
    assert names == [mv.version, again.version]
    assert not [p for p in (tmp_path / "churn").iterdir() if p.name.startswith(".tmp")]


def test_failed_register_leaves_nothing(tmp_path):
    with pytest.raises(Exception):  # noqa: B017 - a lambda cannot be pickled
        registry.register(
            tmp_path,
            "churn",
            lambda x: x,
            as_of="2024-06-30",
            training_window=("2024-01-01", "2024-04-01"),
            features=[],
            metrics={},
            data_fingerprint="x",
        )
    assert registry.list_versions(tmp_path, "churn") == []
    assert [p.name for p in (tmp_path / "churn").iterdir()] == []


def test_corrupted_artefact_is_refused(tmp_path):
    mv = _register(tmp_path)
    with open(mv.model_path, "ab") as fh:
        fh.write(b"garbage")
    with pytest.raises(OSError, match="sha256"):
        registry.load(tmp_path, "churn", mv.version)


def test_promote_rollback_and_history(tmp_path):
    assert registry.champion(tmp_path, "churn") is None
    a, b, c = (_register(tmp_path, seed) for seed in range(3))
    for mv in (a, b, c):
        registry.promote(tmp_path, "churn", mv.version)
    assert registry.champion(tmp_path, "churn").version == c.version
    assert registry.rollback(tmp_path, "churn").version == b.version
    assert registry.champion(tmp_path, "churn").version == b.version
    assert registry.rollback(tmp_path, "churn").version == a.version
    with pytest.raises(ValueError, match="no previous champion"):
        registry.rollback(tmp_path, "churn")
    assert registry.rollback(tmp_path, "churn", to_version=c.version).version == c.version
    assert registry.load(tmp_path, "churn").coef_.tolist() == _model(2).coef_.tolist()
    with pytest.raises(KeyError):
        registry.promote(tmp_path, "churn", "churn-nope")
    state = registry.champion_state(tmp_path, "churn")
    actions = [(e["action"], e["version"]) for e in state["history"]]
    assert actions == [
        ("promote", a.version),
        ("promote", b.version),
        ("promote", c.version),
        ("rollback", b.version),
        ("rollback", a.version),
        ("rollback", c.version),
    ]
    assert state["champion"] == c.version and state["history"][-1]["previous"] == a.version
    leftovers = [p.name for p in (tmp_path / "churn").iterdir() if p.name.startswith(".champ")]
    assert leftovers == []


def test_cli_list_and_rollback(tmp_path, capsys):
    a, b = _register(tmp_path, 0), _register(tmp_path, 1)
    registry.promote(tmp_path, "churn", a.version)
    registry.promote(tmp_path, "churn", b.version)
    assert registry.main(["list", "--root", str(tmp_path), "--kind", "churn"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith(f"  {a.version}") and listed[1].startswith(f"* {b.version}")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml.registry",
            "rollback",
            "--root",
            str(tmp_path),
            "--kind",
            "churn",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == f"churn champion: {a.version}"
    assert registry.champion(tmp_path, "churn").version == a.version
    with pytest.raises(SystemExit):
        registry.main(["rollback", "--root", str(tmp_path), "--kind", "churn", "--to", "nope"])


def test_data_fingerprint_is_stable_and_sensitive():
    orders = pd.DataFrame(
        {
            "order_id": ["1", "2", "3"],
            "customer_id": ["a", "b", "a"],
            "ordered_at": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
            "status": ["placed", "delivered", "cancelled"],
            "order_total": [10.0, 20.0, np.nan],
        }
    )
    fp = registry.data_fingerprint({"orders": orders})
    assert fp.startswith("sha256:") and len(fp) == 7 + 64
    shuffled = orders.iloc[[2, 0, 1], ::-1].reset_index(drop=True)
    assert registry.data_fingerprint({"orders": shuffled}) == fp
    changed = orders.assign(order_total=[10.0, 20.5, np.nan])
    assert registry.data_fingerprint({"orders": changed}) != fp
    assert registry.data_fingerprint({"orders": orders.iloc[:2]}) != fp
    assert registry.data_fingerprint({"other": orders}) != fp
    data = LifecycleData(orders=orders)
    assert registry.data_fingerprint(data) == registry.data_fingerprint(
        LifecycleData(orders=orders)
    )
    assert registry.data_fingerprint(data) != registry.data_fingerprint({"orders": data.orders})


# -- quality gate -------------------------------------------------------------------------
def test_gate_passes_with_reasons():
    assert baselines_from_metrics(METRICS) == {"recency": 0.72, "btyd": 0.78}
    result = gate(METRICS, {"roc_auc": 0.813}, baselines=baselines_from_metrics(METRICS))
    assert result.passed and bool(result)
    assert any("beats baseline btyd" in r and "0.8100 vs 0.7800" in r for r in result.reasons)
    assert any("within tolerance of champion" in r and "-0.0030" in r for r in result.reasons)
    assert gate(METRICS, None).passed  # baselines default to the candidate's own metrics
    assert "no current champion" in gate(METRICS, None).reasons


def test_gate_fails_on_baseline_champion_and_limits():
    weak = {**METRICS, "roc_auc": 0.75}
    result = gate(weak, None)
    assert not result.passed
    assert any(
        "does not beat baseline btyd" in r and "0.7500 vs 0.7800" in r for r in result.reasons
    )
    assert any(r.startswith("beats baseline recency") for r in result.reasons)
    worse = gate(METRICS, {"roc_auc": 0.82}, tolerance=0.005)
    assert not worse.passed and any("worse than champion" in r for r in worse.reasons)
    assert gate(METRICS, {"roc_auc": 0.814}, tolerance=0.005).passed
    margin = gate(METRICS, None, min_gain_over_baseline=0.05)
    assert not margin.passed and "FAILED" in margin.summary
    assert not gate(METRICS, None, limits={"ece": 0.01}).passed
    assert gate(METRICS, None, limits={"ece": 0.02}).passed
    missing = gate({"ece": 0.01}, None)
    assert not missing.passed and "no roc_auc" in missing.reasons[0]
    # A baseline that could not be computed is reported, not failed; lower-is-better metrics.
    nan_base = gate(METRICS, None, baselines={"btyd": math.nan, "recency": 0.7})
    assert nan_base.passed and any("not judged" in r for r in nan_base.reasons)
    brier = {"brier": 0.15, "baseline_btyd_brier": 0.18}
    assert gate(brier, {"brier": 0.152}, primary="brier", higher_is_better=False).passed
    assert not gate(brier, {"brier": 0.14}, primary="brier", higher_is_better=False).passed
