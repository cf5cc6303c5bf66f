"""Segment history survives nightly rebuilds and stays idempotent (real simulator, ingest, dbt).

A small landing zone is loaded up to night 1 and built with ``dbt build`` (CLV predictions
inserted so value at stake and the CLV rules are live), then night 2 loads the next days and
builds with ``--vars {min_date, max_date}`` as the Dagster nightly job does. Night 2 is then
rebuilt: unchanged (identical tables), with a threshold changed (segments move on the same
night: the history must be as if night 2 had been built that way) and back again.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest
from dbt.cli.main import dbtRunner

from orchestration.contract import SOURCES
from orchestration.ingest import load_partitions
from orchestration.warehouse import ensure_ml_tables
from simulator.config import SimulatorConfig
from simulator.writer import run as simulate

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
START, NIGHT_1, NIGHT_2 = dt.date(2024, 1, 1), dt.date(2024, 10, 20), dt.date(2024, 10, 27)
SEGMENT_MODELS = ["segment_membership_history", "segment_daily"]
HISTORY_SQL = (
    "select customer_id, segment, valid_from, valid_to, is_current, recommended_action "
    "from marts.segment_membership_history order by customer_id, valid_from"
)
DAILY_SQL = "select * from marts.segment_daily order by as_of_date, segment"
Row = tuple[object, ...]


def load(path: Path, landing: Path, first: dt.date, last: dt.date) -> None:
    """Load every source's partitions first..last with the real ingest."""
    with duckdb.connect(str(path)) as con:
        ensure_ml_tables(con)
        for source in SOURCES:
            days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
            _, refused = load_partitions(con, source, days, landing)
            assert refused == []


def dbt_build(path: Path, target: Path, select: list[str], variables: dict | None) -> None:
    """``dbt build`` of ``select`` (models + data tests, no unit tests); fail on any failure."""
    cli = ["build", "--select", *select, "--indirect-selection", "cautious"]
    cli += ["--exclude", "test_type:unit", "--project-dir", str(PROJECT_DIR)]
    cli += ["--profiles-dir", str(PROJECT_DIR), "--target-path", str(target)]
    cli += ["--log-path", str(target)]
    if variables:
        cli += ["--vars", json.dumps(variables)]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LIFECYCLE_WAREHOUSE", str(path))
        result = dbtRunner().invoke(cli)
    failures = [
        f"{r.node.unique_id}: {r.status} {r.message}"
        for r in (result.result or [])
        if str(r.status) not in ("success", "pass")
    ]
    assert result.success and not failures, (result.exception, failures)
    built = {r.node.name for r in result.result if r.node.resource_type == "model"}
    assert set(SEGMENT_MODELS) <= built


def read(path: Path, sql: str) -> list[Row]:
    with duckdb.connect(str(path)) as con:
        return [tuple(row) for row in con.execute(sql).fetchall()]


def segments(path: Path) -> dict[str, tuple[str, str]]:
    """customer_id -> (segment, recommended_action) of customer_segments."""
    sql = "select customer_id, segment, recommended_action from marts.customer_segments"
    rows = read(path, sql)
    return {str(c): (str(s), str(a)) for c, s, a in rows}


def expected_history(first: dict, second: dict) -> list[Row]:
    """Spells after night 1 (``first``) and night 2 (``second``) built in turn."""
    rows: list[Row] = []
    for customer, (segment, action) in second.items():
        before = first.get(customer)
        if before is None:
            rows.append((customer, segment, NIGHT_2, None, True, action))
        elif before[0] == segment:
            rows.append((customer, segment, NIGHT_1, None, True, before[1]))
        else:
            rows.append((customer, before[0], NIGHT_1, NIGHT_2, False, before[1]))
            rows.append((customer, segment, NIGHT_2, None, True, action))
    return sorted(rows, key=lambda r: (r[0], r[2]))


def check_night_2(path: Path, first: dict, second: dict) -> None:
    """History = night 1 spells closed / opened by night 2; segment_daily agrees with both."""
    history = read(path, HISTORY_SQL)
    assert history == expected_history(first, second)
    daily = {
        (d, s): (c, e, x, v)
        for d, s, c, e, x, v in read(
            path,
            "select as_of_date, segment, customers, entered, exited, value_at_stake "
            "from marts.segment_daily",
        )
    }
    assert {d for d, _ in daily} == {NIGHT_1, NIGHT_2}
    clv = dict(read(path, "select customer_id, coalesce(clv, 0) from marts.customer_segments"))
    for (day, segment), (customers, entered, exited, value) in daily.items():
        assert entered == sum(1 for r in history if r[1] == segment and r[2] == day)
        assert exited == sum(1 for r in history if r[1] == segment and r[3] == day)
        if day == NIGHT_2:
            members = [c for c, (s, _) in second.items() if s == segment]
            assert customers == len(members)
            assert value == pytest.approx(sum(clv[c] for c in members))
    assert sum(daily[(NIGHT_2, s)][0] for s in {s for _, s in daily}) == len(second)


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Night 1 and night 2 built in turn; the tables and segments after each."""
    tmp = tmp_path_factory.mktemp("segment_history")
    landing, path, target = tmp / "landing", tmp / "lifecycle.duckdb", tmp / "target"
    simulate(SimulatorConfig(customers=400, start=START, end=NIGHT_2, seed=11), landing)
    load(path, landing, START, NIGHT_1)
    with duckdb.connect(str(path)) as con:  # CLV scored as of night 1 (as the ML assets do)
        con.execute(
            "insert into ml.clv_predictions (customer_id, as_of_date, clv, model_version, "
            "scored_at) select distinct customer_id, ?, (hash(customer_id) % 100000) / 100.0, "
            "'test', ? from raw.orders",
            [NIGHT_1, dt.datetime.combine(NIGHT_1, dt.time(23))],
        )
    selection = [f"+{m}" for m in SEGMENT_MODELS]
    dbt_build(path, target, selection, None)
    out: dict = {"path": path, "target": target, "first": segments(path)}
    out["history_1"], out["daily_1"] = read(path, HISTORY_SQL), read(path, DAILY_SQL)
    load(path, landing, NIGHT_1 + dt.timedelta(days=1), NIGHT_2)
    out["vars"] = {"min_date": str(NIGHT_1 + dt.timedelta(days=1)), "max_date": str(NIGHT_2)}
    dbt_build(path, target, selection, out["vars"])
    out["second"] = segments(path)
    out["history_2"], out["daily_2"] = read(path, HISTORY_SQL), read(path, DAILY_SQL)
    return out


def test_first_night_opens_one_spell_per_customer(nights: dict) -> None:
    first = nights["first"]
    assert len(first) > 300 and len({s for s, _ in first.values()}) >= 4
    assert sorted(nights["history_1"]) == sorted(
        (c, s, NIGHT_1, None, True, a) for c, (s, a) in first.items()
    )
    assert sum(r[3] for r in nights["daily_1"]) == len(first)  # everyone enters on night 1


def test_second_night_closes_and_opens_spells(nights: dict) -> None:
    first, second = nights["first"], nights["second"]
    moved = [c for c in first if c in second and first[c][0] != second[c][0]]
    assert len(moved) >= 5 and len(set(second) - set(first)) >= 1
    check_night_2(nights["path"], first, second)
    assert [r for r in nights["daily_2"] if r[0] == NIGHT_1] == nights["daily_1"]


def test_rebuilding_a_night_is_idempotent(nights: dict) -> None:
    path, target, first = nights["path"], nights["target"], nights["first"]
    again = ["customer_segments+"]
    dbt_build(path, target, again, nights["vars"])
    assert read(path, HISTORY_SQL) == nights["history_2"]
    assert read(path, DAILY_SQL) == nights["daily_2"]

    # the same night rebuilt with other segments: as if it had been built that way
    dbt_build(path, target, again, {**nights["vars"], "vip_clv_quantile": 0.7})
    changed = segments(path)
    assert sum(changed[c][0] != nights["second"][c][0] for c in changed) >= 5
    check_night_2(path, first, changed)

    # and back: identical to the first build of night 2
    dbt_build(path, target, again, nights["vars"])
    assert read(path, HISTORY_SQL) == nights["history_2"]
    assert read(path, DAILY_SQL) == nights["daily_2"]
