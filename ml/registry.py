"""Model registry on disk: versioned artefacts, metadata, model cards and a champion pointer.

Layout under a root folder (chosen by the caller)::

    <root>/<kind>/<version>/model.joblib   the fitted object (joblib)
    <root>/<kind>/<version>/meta.json      kind, version, as-of, training window, features,
                                           metrics, data fingerprint, params, artefact sha256
    <root>/<kind>/<version>/model_card.md  short human-readable card
    <root>/<kind>/<version>/plots/*.png    optional attachments (evaluation plots)
    <root>/<kind>/champion.json            current champion + lineage + history of changes

A version folder is written to a temporary folder and renamed into place, and
``champion.json`` is replaced atomically (``os.replace``) under a file lock, so readers
never see a half-written version or pointer. Rollback (the one documented command)::

    python -m ml.registry rollback --root DIR --kind churn [--to VERSION]
    python -m ml.registry list --root DIR --kind churn
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

MODEL_FILE, META_FILE, CARD_FILE, CHAMPION_FILE = (
    "model.joblib",
    "meta.json",
    "model_card.md",
    "champion.json",
)


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version (``meta`` is the content of ``meta.json``)."""

    kind: str
    version: str
    path: Path
    meta: dict

    @property
    def metrics(self) -> dict:
        return self.meta.get("metrics", {})

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def card_path(self) -> Path:
        return self.path / CARD_FILE


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def _iso(value: object) -> str | None:
    return None if value is None else pd.Timestamp(value).isoformat()


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp | dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _dumps(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(kind_dir: Path) -> Iterator[None]:
    kind_dir.mkdir(parents=True, exist_ok=True)
    with open(kind_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_USE = {
    "churn": (
        "Rank customers with orders by P(no order in the churn horizon) to target retention "
        "and win-back actions; probabilities are calibrated on the latest matured cutoff."
    ),
    "clv": "Expected spend / customer lifetime value for budget allocation and VIP selection.",
}
_LIMITS = (
    "- Trained on the shop's own history only; customers without a non-cancelled order are "
    "not scored.\n- Metrics come from one time-split backtest; quality can drift (see the "
    "backtest and drift tables).\n- Not for decisions about individuals beyond marketing "
    "actions (no credit, pricing or eligibility decisions)."
)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_model_card(meta: dict, intended_use: str | None = None, limitations: str | None = None):
    """Markdown model card from a ``meta.json`` dict (metrics and baselines as tables)."""
    metrics = meta.get("metrics", {})
    own = {k: v for k, v in metrics.items() if not k.startswith("baseline_")}
    base: dict[str, dict] = {}  # baseline name -> {metric: value}
    for key, value in metrics.items():
        for m in own:
            if key.startswith("baseline_") and key.endswith(f"_{m}"):
                base.setdefault(key[len("baseline_") : -len(m) - 1], {})[m] = value
    names = sorted(base)
    start, end = meta.get("training_window", [None, None])
    lines = [
        f"# Model card: {meta['kind']} {meta['version']}",
        "",
        f"- **Kind:** {meta['kind']}",
        f"- **Version:** {meta['version']}",
        f"- **As of:** {meta.get('as_of')}",
        f"- **Training window:** {start} .. {end}",
        f"- **Registered at (UTC):** {meta.get('registered_at')}",
        f"- **Data fingerprint:** `{meta.get('data_fingerprint')}`",
        f"- **Artefact sha256:** `{meta.get('artifact_sha256')}`",
        f"- **Features ({len(meta.get('features', []))}):** "
        + ", ".join(f"`{f}`" for f in meta.get("features", [])),
        "",
        "## Metrics vs baselines (time-split holdout, same rows)",
        "",
        "| metric | model | " + " | ".join(f"baseline {n}" for n in names) + " |",
        "|---" * (2 + len(names)) + "|",
    ]
    for m, v in sorted(own.items()):
        cells = [_fmt(base[n][m]) if m in base[n] else "-" for n in names]
        lines.append(f"| {m} | {_fmt(v)} | " + " | ".join(cells) + " |")
    if meta.get("params"):
        lines += ["", "## Parameters", "", "```json", _dumps(meta["params"]), "```"]
    lines += ["", "## Intended use", "", intended_use or _USE.get(meta["kind"], "Internal use.")]
    lines += ["", "## Limitations", "", limitations or _LIMITS]
    if meta.get("attachments"):
        lines += ["", "## Plots", ""] + [f"![{Path(a).stem}]({a})" for a in meta["attachments"]]
    return "\n".join(lines) + "\n"


def data_fingerprint(frames: Mapping[str, pd.DataFrame] | object) -> str:
    """Stable hash of a set of tables: names, row counts, columns and row contents.

    Accepts a mapping ``name -> DataFrame`` or an object with those tables as attributes
    (e.g. :class:`ml.data.LifecycleData`). Row order and column order do not matter; the
    index is ignored. Returns ``"sha256:<hex>"``.
    """
    if not isinstance(frames, Mapping):
        from ml.data import SCHEMAS

        frames = {t: getattr(frames, t) for t in SCHEMAS if hasattr(frames, t)}
    h = hashlib.sha256()
    for name in sorted(frames):
        frame = frames[name]
        cols = sorted(map(str, frame.columns))
        h.update(f"{name}|{len(frame)}|{','.join(cols)}\n".encode())
        if len(frame) and cols:
            renamed = frame.set_axis(list(map(str, frame.columns)), axis=1)[cols]
            rows = pd.util.hash_pandas_object(renamed, index=False).to_numpy(np.uint64)
            h.update(np.sort(rows).tobytes())
    return f"sha256:{h.hexdigest()}"


def _kind_dir(root: os.PathLike | str, kind: str) -> Path:
    if not kind or "/" in kind or kind.startswith("."):
        raise ValueError(f"invalid model kind {kind!r}")
    return Path(root) / kind


def register(
    root: os.PathLike | str,
    kind: str,
    model_obj: object,
    *,
    as_of: object,
    training_window: tuple[object, object],
    features: Iterable[str],
    metrics: Mapping[str, float],
    data_fingerprint: str,
    params: Mapping[str, object] | None = None,
    version: str | None = None,
    attachments: Iterable[os.PathLike | str] = (),
    intended_use: str | None = None,
    limitations: str | None = None,
) -> ModelVersion:
    """Write a new version (artefact, ``meta.json``, model card) and return it.

    The version name defaults to ``<kind>-<YYYYMMDD of as_of>-<8 hex of a content hash>``
    (a ``-2``, ``-3``... suffix is added if it exists already). ``attachments`` (e.g. PNG
    plots) are copied to ``plots/`` and linked from the card. Registering does not promote.
    """
    kdir = _kind_dir(root, kind)
    kdir.mkdir(parents=True, exist_ok=True)
    start, end = training_window
    meta = {
        "kind": kind,
        "as_of": _iso(as_of),
        "training_window": [_iso(start), _iso(end)],
        "features": list(map(str, features)),
        "metrics": {str(k): v for k, v in metrics.items()},
        "data_fingerprint": data_fingerprint,
        "params": dict(params or {}),
        "registered_at": _now(),
    }
    digest = hashlib.sha256(_dumps({**meta, "registered_at": None}).encode()).hexdigest()[:8]
    base = version or f"{kind}-{pd.Timestamp(as_of):%Y%m%d}-{digest}"
    tmp = Path(tempfile.mkdtemp(dir=kdir, prefix=".tmp-"))
    try:
        joblib.dump(model_obj, tmp / MODEL_FILE)
        plots = []
        for src in attachments:
            (tmp / "plots").mkdir(exist_ok=True)
            plots.append(f"plots/{Path(src).name}")
            shutil.copy2(src, tmp / plots[-1])
        meta["artifact_sha256"] = _sha256(tmp / MODEL_FILE)
        meta["attachments"] = plots
        for n in range(1, 1000):
            name = base if n == 1 else f"{base}-{n}"
            meta["version"] = name
            (tmp / META_FILE).write_text(_dumps(meta))
            card = render_model_card(meta, intended_use=intended_use, limitations=limitations)
            (tmp / CARD_FILE).write_text(card)
            try:
                os.rename(tmp, kdir / name)  # fails if the target exists: never overwrites
            except OSError:
                if version is not None or not (kdir / name).exists():
                    raise
                continue
            return ModelVersion(kind, name, kdir / name, meta)
        raise FileExistsError(f"too many versions named {base}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def get_version(root: os.PathLike | str, kind: str, version: str) -> ModelVersion:
    """The registered ``version`` of ``kind`` (``KeyError`` if it does not exist)."""
    path = _kind_dir(root, kind) / version
    if not (path / META_FILE).is_file():
        raise KeyError(f"no {kind} model version {version!r} under {root}")
    return ModelVersion(kind, version, path, json.loads((path / META_FILE).read_text()))


def list_versions(root: os.PathLike | str, kind: str) -> list[ModelVersion]:
    """All versions of ``kind``, oldest registration first."""
    kdir = _kind_dir(root, kind)
    if not kdir.is_dir():
        return []
    found = [
        get_version(root, kind, p.name)
        for p in kdir.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / META_FILE).is_file()
    ]
    return sorted(found, key=lambda v: (v.meta.get("registered_at", ""), v.version))


def load(root: os.PathLike | str, kind: str, version: str | None = None) -> object:
    """Load the artefact of ``version`` (default: the champion); checks its sha256."""
    mv = get_version(root, kind, version) if version else champion(root, kind)
    if mv is None:
        raise LookupError(f"no champion for {kind} under {root}")
    expected = mv.meta.get("artifact_sha256")
    if expected and _sha256(mv.model_path) != expected:
        raise OSError(f"artefact of {kind}/{mv.version} does not match its sha256")
    return joblib.load(mv.model_path)


def champion_state(root: os.PathLike | str, kind: str) -> dict:
    """Content of ``champion.json``: ``champion``, ``lineage`` (stack), ``history`` (log)."""
    path = _kind_dir(root, kind) / CHAMPION_FILE
    if not path.is_file():
        return {"kind": kind, "champion": None, "lineage": [], "history": []}
    return json.loads(path.read_text())


def champion(root: os.PathLike | str, kind: str) -> ModelVersion | None:
    """The current champion of ``kind``, or None when none has been promoted."""
    name = champion_state(root, kind)["champion"]
    return None if name is None else get_version(root, kind, name)


def _set_champion(root, kind: str, version: str, action: str, pop: bool = False) -> ModelVersion:
    kdir = _kind_dir(root, kind)
    with _locked(kdir):
        state = champion_state(root, kind)
        previous, lineage = state["champion"], list(state["lineage"])
        if pop:
            if len(lineage) < 2:
                raise ValueError(f"{kind}: no previous champion to roll back to")
            lineage.pop()
            version = lineage[-1]
        elif previous != version:
            lineage.append(version)
        mv = get_version(root, kind, version)  # must exist
        event = {"at": _now(), "action": action, "version": version, "previous": previous}
        state.update(champion=version, lineage=lineage, history=[*state["history"], event])
        _atomic_write(kdir / CHAMPION_FILE, _dumps(state))
    return mv


def promote(root: os.PathLike | str, kind: str, version: str) -> ModelVersion:
    """Make ``version`` the champion of ``kind`` (recorded in the champion history)."""
    return _set_champion(root, kind, version, "promote")


def rollback(root: os.PathLike | str, kind: str, to_version: str | None = None) -> ModelVersion:
    """Restore the previous champion (or ``to_version``); returns the new champion.

    Without ``to_version`` the current champion is popped from the lineage, so repeated
    rollbacks walk back through earlier champions. ``ValueError`` if there is none.
    """
    if to_version is None:
        return _set_champion(root, kind, "", "rollback", pop=True)
    return _set_champion(root, kind, to_version, "rollback")


def main(argv: list[str] | None = None) -> int:
    """CLI: ``list``, ``promote`` and ``rollback`` (see the module docstring)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m ml.registry", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("list", "promote", "rollback"):
        p = sub.add_parser(name)
        env_root = os.environ.get("LIFECYCLE_MODEL_DIR")
        p.add_argument("--root", default=env_root, required=env_root is None)
        p.add_argument("--kind", required=True)
        if name == "promote":
            p.add_argument("--version", required=True)
        if name == "rollback":
            p.add_argument("--to", default=None, dest="to_version")
    args = parser.parse_args(argv)
    try:
        if args.command == "promote":
            mv = promote(args.root, args.kind, args.version)
        elif args.command == "rollback":
            mv = rollback(args.root, args.kind, args.to_version)
        else:
            current = champion_state(args.root, args.kind)["champion"]
            for v in list_versions(args.root, args.kind):
                mark = "*" if v.version == current else " "
                meta = v.meta
                print(f"{mark} {v.version}  as_of={meta['as_of']}  {meta['registered_at']}")
            return 0
    except (KeyError, ValueError) as exc:
        parser.exit(1, f"error: {exc}\n")
    print(f"{args.kind} champion: {mv.version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
