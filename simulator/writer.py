"""Write simulated days as a landing zone and the ground truth beside it.

Layout: ``<out>/<source>/<YYYY-MM-DD>.<csv|parquet|jsonl>``. Every source gets a file for every
simulated day, header-only (CSV), schema-only (Parquet) or empty (JSONL) when nothing happened
that day: a present-but-empty file means "extracted, no changes", a missing file means "not
landed". CSV is UTF-8 with a header, ``\\n`` line ends, money with 2 decimals, timestamps
``YYYY-MM-DDTHH:MM:SSZ``. Parquet stores timestamps as naive UTC timestamps and dates as
``date32`` (a column that holds an unparsable value, from ``--bad-rows``, stays a string).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestration.contract import FILE_FORMATS, SOURCES
from simulator.config import SimulatorConfig
from simulator.engine import Simulation
from simulator.truth import ground_truth


def default_truth_dir(out_dir: Path) -> Path:
    """``<parent of out_dir>/ground_truth``: beside, never inside, the landing zone."""
    return Path(out_dir).resolve().parent / "ground_truth"


def _arrow_column(values: np.ndarray, sql_type: str) -> pa.Array:
    """Arrow array of one column: timestamps/dates typed when every value parses."""
    if sql_type in ("TIMESTAMP", "DATE"):
        text = np.array([None if v is None else str(v).removesuffix("Z") for v in values])
        unit = "s" if sql_type == "TIMESTAMP" else "D"
        try:
            parsed = text.astype(f"datetime64[{unit}]")
        except ValueError:  # an invalid value (--bad-rows): keep the text for the quarantine
            return pa.array(values, type=pa.string(), from_pandas=True)
        if sql_type == "TIMESTAMP":
            return pa.array(parsed, type=pa.timestamp("s"), from_pandas=True)
        return pa.array(parsed, type=pa.date32(), from_pandas=True)
    if values.dtype == object:
        return pa.array(values, type=pa.string(), from_pandas=True)
    return pa.array(values)


def _arrow_table(source: str, df: pd.DataFrame) -> pa.Table:
    types = {c.name: c.sql_type for c in SOURCES[source].columns}
    return pa.table(
        {name: _arrow_column(df[name].to_numpy(), types.get(name, "VARCHAR")) for name in df}
    )


def _money_as_text(source: str, df: pd.DataFrame) -> pd.DataFrame:
    """Money columns as ``%.2f`` text (vectorised: far faster than ``to_csv(float_format)``)."""
    money = [c.name for c in SOURCES[source].columns if c.sql_type.startswith("DECIMAL")]
    out = df.copy(deep=False)
    for name in money:
        values = out[name].to_numpy(dtype=float)
        text = np.char.mod("%.2f", values).astype(object)
        text[np.isnan(values)] = None
        out[name] = text
    return out


def write_frame(path: Path, source: str, df: pd.DataFrame, fmt: str) -> None:
    """Write one source-day frame to ``path`` in ``fmt`` (csv, parquet or jsonl)."""
    if fmt == "csv":
        text = _money_as_text(source, df)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")  # None -> empty field
            writer.writerow(text.columns)
            writer.writerows(
                zip(*(text[c].to_numpy(dtype=object) for c in text.columns), strict=True)
            )
    elif fmt == "jsonl":
        text = df.to_json(orient="records", lines=True, force_ascii=False) if len(df) else ""
        if text and not text.endswith("\n"):
            text += "\n"
        path.write_text(text, encoding="utf-8")
    elif fmt == "parquet":
        pq.write_table(_arrow_table(source, df), path)
    else:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FILE_FORMATS}")


def clean_landing(out_dir: Path, sources: tuple[str, ...]) -> None:
    """Delete landing files (``<out>/<source>/*.<fmt>``) of an earlier run; nothing else."""
    for source in sources:
        for fmt in FILE_FORMATS:
            for f in (Path(out_dir) / source).glob(f"*.{fmt}"):
                f.unlink()


def run(
    config: SimulatorConfig,
    out_dir: Path | str,
    truth_dir: Path | str | None = None,
    fmt: str = "csv",
    clean: bool = False,
) -> dict[str, Any]:
    """Simulate ``config``, write the landing zone, the ground truth and ``summary.json``.

    Parameters
    ----------
    config : SimulatorConfig
        What to simulate.
    out_dir : path
        Landing zone root.
    truth_dir : path, optional
        Where ``customers.parquet`` and ``summary.json`` go; default :func:`default_truth_dir`.
    fmt : str
        ``csv``, ``parquet`` or ``jsonl``.
    clean : bool
        Remove landing files of an earlier run first.

    Returns
    -------
    dict
        The summary (row and file counts per source, distinct orders, seed, arguments).
    """
    if fmt not in FILE_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FILE_FORMATS}")
    out = Path(out_dir)
    truth = Path(truth_dir) if truth_dir is not None else default_truth_dir(out)
    if truth.resolve().is_relative_to(out.resolve()):
        raise ValueError("the ground truth must not be written inside the landing zone")
    if clean:
        clean_landing(out, config.sources)
    for source in config.sources:
        (out / source).mkdir(parents=True, exist_ok=True)
    rows = dict.fromkeys(config.sources, 0)
    files = dict.fromkeys(config.sources, 0)
    sim = Simulation(config)
    for day, frames in sim.days():
        for source, df in frames.items():
            write_frame(out / source / f"{day.isoformat()}.{fmt}", source, df, fmt)
            rows[source] += len(df)
            files[source] += 1
    truth.mkdir(parents=True, exist_ok=True)
    gt = ground_truth(sim)
    gt.to_parquet(truth / "customers.parquet", index=False)
    summary = {
        "seed": config.seed,
        "format": fmt,
        "landing_dir": str(out),
        "config": config.to_dict(),
        "rows": rows,
        "files": files,
        "ids_issued": {  # reviews/surveys due after the end never land
            "customers": int(sim.pop.size),
            "orders": sim.counters["order"],
            "reviews": sim.counters["review"],
            "surveys": sim.counters["survey"],
            "checkouts": sim.counters["checkout"],
        },
        "truth": {
            "buyers": int((gt["orders_placed"] > 0).sum()),
            "prospects": int(gt["is_prospect"].sum()),
            "alive_at_end": int(gt["alive_at_end"].sum()),
            "expected_orders_365": round(float(gt["expected_orders_365"].sum()), 2),
            "expected_spend_365": round(float(gt["expected_spend_365"].sum()), 2),
        },
    }
    (truth / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
