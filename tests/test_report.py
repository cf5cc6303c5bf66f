"""The nightly HTML report on a real small warehouse, rendered by headless Chromium.

The fixture simulates a landing zone, loads it with the ingest, builds the dbt project,
trains the churn model twice (scores of an early date mature into a backtest row) and the
CLV model, writes their tables, rebuilds the segments, then builds the report. Chromium
(Debian's package, installed with apt when missing) takes a screenshot and dumps the DOM.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pytest
from dbt.cli.main import dbtRunner
from matplotlib import image

from ml.clv import fit_clv, summary_from_orders
from orchestration.contract import SOURCES
from orchestration.ingest import load_partitions
from orchestration.ml_io import as_of_cutoff, load_lifecycle_data
from orchestration.model_ops import churn_backtest, train_and_score_churn
from orchestration.warehouse import ensure_ml_tables, replace_rows
from report import FIGURE_IDS, build_report
from simulator.config import SimulatorConfig
from simulator.writer import run as simulate

ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIR = ROOT / "dbt_project"
ARTIFACTS = ROOT / "test-artifacts"
START, END = dt.date(2023, 9, 1), dt.date(2024, 10, 31)
HORIZON = 90
EARLY = END - dt.timedelta(days=HORIZON + 1)  # its horizon has passed by END: backtested
CHROMIUM = Path("/usr/bin/chromium")


def dbt_build(warehouse: Path, target: Path, *select: str) -> None:
    cli = ["build", "--exclude", "test_type:unit", "--project-dir", str(PROJECT_DIR)]
    cli += ["--profiles-dir", str(PROJECT_DIR), "--target-path", str(target)]
    cli += ["--log-path", str(target), *(["--select", *select] if select else [])]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIFECYCLE_WAREHOUSE", str(warehouse))
        result = dbtRunner().invoke(cli)
    assert result.success, result.exception


def score(con: duckdb.DuckDBPyConnection, as_of: dt.date, model_dir: Path) -> None:
    """What the ML assets do as of ``as_of``: churn (registry + scores + backtest) and CLV."""
    data = load_lifecycle_data(con, as_of)
    outcome = train_and_score_churn(data, as_of_cutoff(as_of), model_dir, HORIZON)
    scores = outcome.scores.assign(
        as_of_date=as_of, model_version=outcome.champion.version, scored_at=dt.datetime.now()
    )
    replace_rows(con, "churn_scores", scores, "as_of_date = $d", {"d": as_of})
    history = con.execute("select * exclude (scored_at) from ml.churn_scores").df()
    backtest = churn_backtest(history, data, as_of_cutoff(as_of), HORIZON)
    replace_rows(con, "churn_backtest", backtest, "true", {})
    summary = summary_from_orders(data.orders, as_of_cutoff(as_of))
    clv = fit_clv(summary).score(summary, horizon_days=365).reset_index(drop=True)
    clv = clv.assign(as_of_date=as_of, model_version="clv-test", scored_at=dt.datetime.now())
    replace_rows(con, "clv_predictions", clv, "as_of_date = $d", {"d": as_of})


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("report")
    landing, warehouse, models = tmp / "landing", tmp / "lifecycle.duckdb", tmp / "models"
    config = SimulatorConfig(customers=500, start=START, end=END, seed=5)
    simulate(config, landing, tmp / "truth", fmt="csv", clean=True)
    days = [START + dt.timedelta(days=i) for i in range((END - START).days + 1)]
    with duckdb.connect(str(warehouse)) as con:
        for source in SOURCES:
            assert load_partitions(con, source, days, landing)[1] == []
        ensure_ml_tables(con)
    dbt_build(warehouse, tmp / "target")
    with duckdb.connect(str(warehouse)) as con:
        score(con, EARLY, models)
        score(con, END, models)
    dbt_build(warehouse, tmp / "target", "source:ml+")
    # dbt-duckdb keeps its in-process handle open: the report reads a checkpointed copy
    # (a read-only connection to the same file would clash with that handle).
    published = tmp / "published.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("checkpoint")
        shutil.copy(warehouse, published)
    with duckdb.connect(str(published), read_only=True) as con:
        result = build_report(con, tmp / "reports", models)
    return {"tmp": tmp, "result": result, "warehouse": published, "models": models}


def chromium() -> Path:
    """Debian's Chromium, installed with apt-get when missing (skip only without apt)."""
    if not CHROMIUM.exists():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("chromium is missing and cannot be installed with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                pytest.skip(f"apt-get failed: {done.stderr[-500:]}")
    return CHROMIUM


def run_chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        *("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"),
        *("--disable-component-update", "--disable-sync", "--no-first-run"),
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [str(chromium()), *flags, *args], capture_output=True, text=True, timeout=120
    )


def figures(page: str) -> dict[str, str]:
    """figure id -> the figure's inner HTML."""
    return dict(re.findall(r'<figure id="([^"]+)"[^>]*>(.*?)</figure>', page, flags=re.S))


def test_report_has_every_chart_with_data(built):
    result = built["result"]
    page = result.path.read_text()
    assert result.path.name == f"{result.as_of}.html" and result.as_of == END
    assert result.latest.read_text() == page
    found = figures(page)
    assert list(found) == list(FIGURE_IDS)
    for cid, body in found.items():
        assert "<h2>" in body and 'class="takeaway"' in body, cid
        assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{2000,}"', body), cid
    assert [c.id for c in result.charts if not c.has_data] == []
    # self-contained: no script, stylesheet link or remote URL
    assert not re.search(r"<script|<link|https?://", page)
    with duckdb.connect(str(built["warehouse"]), read_only=True) as con:
        customers = con.execute("select count(*) from marts.dim_customers").fetchone()[0]
        segments = con.execute("select count(*) from marts.customer_segments").fetchone()[0]
    assert result.kpis["customers"] == customers == segments > 0
    assert f"{customers:,}" in page
    assert 0 < result.kpis["churn_rate"] < 1 and result.kpis["clv_total"] > 0


def test_chromium_renders_the_report(built):
    result, tmp = built["result"], built["tmp"]
    shot = tmp / "report.png"
    url = result.path.as_uri()
    done = run_chromium(tmp / "chrome", f"--screenshot={shot}", "--window-size=1280,4000", url)
    assert shot.is_file() and shot.stat().st_size > 50_000, done.stderr[-2000:]
    pixels = image.imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (4000, 1280)
    assert float(np.std(pixels)) > 0.05  # not blank
    rows = np.flatnonzero(pixels.std(axis=(1, 2)) > 0.01)
    assert rows.max() > 2000  # charts fill the page, not only the header
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report-screenshot.png")  # docs/ keeps a reviewed copy

    dom = run_chromium(tmp / "chrome", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = figures(dom.stdout)
    assert set(rendered) == set(FIGURE_IDS)
    assert all("<img" in body for body in rendered.values())


def test_missing_tables_give_no_data_figures(tmp_path):
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as con:
        con.execute("create schema raw; create table raw.orders (_partition_date date)")
        con.execute("insert into raw.orders values ('2025-03-01')")
        ensure_ml_tables(con)
        result = build_report(con, tmp_path / "out", tmp_path / "no-models")
    page = result.path.read_text()
    assert result.as_of == dt.date(2025, 3, 1) and result.path.name == "2025-03-01.html"
    found = figures(page)
    assert list(found) == list(FIGURE_IDS)
    assert all("<svg" in body and "No data yet" in body for body in found.values())
    assert "n/a" in page and json.dumps(result.kpis["customers"]) == "null"


def test_dagster_asset_links_and_attaches_plots(built, monkeypatch):
    import dagster as dg

    from orchestration.defs.report import nightly_report
    from orchestration.defs.shared import WarehouseResource

    out = built["tmp"] / "asset-reports"
    monkeypatch.setenv("LIFECYCLE_REPORT_DIR", str(out))
    result = dg.materialize(
        [nightly_report], resources={"warehouse": WarehouseResource(path=str(built["warehouse"]))}
    )
    assert result.success
    meta = result.asset_materializations_for_node("reports__nightly_report")[0].metadata
    path = Path(meta["path"].value)
    assert path == out / f"{END}.html" and path.is_file() and (out / "latest.html").is_file()
    assert meta["url"].value == path.as_uri()
    plots = [v.value for k, v in meta.items() if k.startswith("plot_")]
    assert 2 <= len(plots) <= 3
    assert all("](data:image/png;base64," in md for md in plots)
    assert meta["kpi_customers"].value == built["result"].kpis["customers"]
