"""End to end through the Dagster UI: backfill three days of the ingest assets from the
asset graph, then check the warehouse and the ``refresh`` run the backfill is followed by.

A real webserver + daemon (tests/dagster_server.py) and Debian's Chromium driven by
Playwright. Screenshots of every step: ``test-artifacts/ui-backfill/NN-<step>.png``.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster_server import PROJECT_ROOT, DagsterStack

from orchestration.contract import SOURCES
from orchestration.warehouse import connect

pytestmark = pytest.mark.timeout(600)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "ui-backfill"
BACKFILL_QUERY = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status runs(limit: 10) { runId status } } } }"""
SENSOR_QUERY = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
  __typename ... on Sensor { sensorState { status } } } }"""
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def ensure_chromium() -> Path:
    """Debian's Chromium, installed with apt when missing (like tests/pg_server.py)."""
    if not CHROMIUM.exists() and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update"], check=True, timeout=600)
        install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
        subprocess.run(install, check=True, timeout=600)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing and could not be installed with apt-get")
    return CHROMIUM


class Screens:
    """Numbered screenshots of one page."""

    def __init__(self, page) -> None:
        self.page, self.n = page, 0
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        ARTIFACTS.mkdir(parents=True)

    def shot(self, step: str) -> None:
        self.n += 1
        self.page.screenshot(path=str(ARTIFACTS / f"{self.n:02d}-{step}.png"))


def drive_ui(stack: DagsterStack, first: dt.date, last: dt.date) -> str:
    """Launch the backfill of ``first..last`` from the UI; wait until it ends; its id."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(ensure_chromium()), headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.set_default_timeout(60_000)
            expect.set_options(timeout=30_000)  # a loaded 2-core machine renders slowly
            # The "Join the Dagster community" pop-up may open on a first visit, at any time,
            # even under the partition dialog, whose overlay then takes real clicks: the click
            # event goes to the Skip button itself.
            skip = page.get_by_role("button", name="Skip")
            page.add_locator_handler(skip, lambda loc: loc.dispatch_event("click"))
            screens = Screens(page)

            page.goto(f"{stack.url}/assets")
            expect(page.get_by_role("button", name="Materialize selected")).to_be_visible()
            screens.shot("catalog")

            page.goto(f"{stack.url}/locations/{PROJECT_ROOT.name}/asset-groups/ingest")
            materialize = page.get_by_role("button", name="Materialize all")
            expect(materialize).to_be_visible()
            expect(page.get_by_text("orders", exact=True).first).to_be_visible()
            screens.shot("ingest-asset-graph")

            dialog = page.get_by_role("dialog")
            for attempt in range(3):  # the community pop-up may swallow the first click
                materialize.click()
                try:
                    expect(dialog.get_by_text("materialize 5 assets")).to_be_visible()
                    break
                except AssertionError:
                    if attempt == 2:
                        raise
            screens.shot("partition-dialog")
            partitions = dialog.get_by_role("textbox")
            partitions.fill(f"[{first.isoformat()}...{last.isoformat()}]")
            partitions.press("Enter")
            days = (last - first).days + 1
            expect(dialog.get_by_text(f"{days} partitions", exact=True)).to_be_visible()
            screens.shot("range-selected")

            dialog.get_by_role("button", name="Launch backfill").click()
            toast = page.get_by_text(re.compile(r"Created backfill \w+"))
            expect(toast).to_be_visible()
            backfill_id = re.search(r"Created backfill (\w+)", toast.inner_text()).group(1)
            screens.shot("backfill-launched")

            page.get_by_role("link", name="View", exact=True).click()
            expect(page.get_by_text(f"{first.isoformat()}...{last.isoformat()}")).to_be_visible()
            screens.shot("backfill-page")

            deadline = time.monotonic() + 240
            while True:  # the backfill's state from the API; the page shows the same below
                status = backfill(stack, backfill_id)["status"]
                if status in BACKFILL_DONE or time.monotonic() > deadline:
                    break
                time.sleep(3)
            page.reload()  # the status tag (its tooltip is the status), not the column header
            expect(page.locator('[data-tooltip="Succeeded"]').first).to_be_visible()
            screens.shot("backfill-succeeded")
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"))
            raise
        finally:
            browser.close()
    return backfill_id


def backfill(stack: DagsterStack, backfill_id: str) -> dict:
    found = stack.graphql(BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
    assert found["__typename"] == "PartitionBackfill", found
    return found


@pytest.fixture(scope="module")
def ui_backfill(dagster_stack: DagsterStack) -> Iterator[dict]:
    """The backfill of ``days[-4:-1]`` launched from the UI, with the warehouse before it."""
    stack = dagster_stack
    first, last = stack.days[-4], stack.days[-2]
    before = stack.loaded_rows()
    backfill_id = drive_ui(stack, first, last)
    yield {"id": backfill_id, "first": first, "last": last, "before": before}


def test_ui_backfill_loads_exactly_the_selected_days(
    dagster_stack: DagsterStack,
    ui_backfill: dict,
) -> None:
    stack, first, last = dagster_stack, ui_backfill["first"], ui_backfill["last"]
    chosen = {first + dt.timedelta(days=i) for i in range((last - first).days + 1)}
    done = backfill(stack, ui_backfill["id"])
    assert done["status"] == "COMPLETED_SUCCESS", done
    # Single-run backfill policy: one run for the three days of the five assets.
    assert len(done["runs"]) == 1, done["runs"]
    run = stack.run(done["runs"][0]["runId"])
    assert run["status"] == "SUCCESS"
    assert run["tags"]["dagster/asset_partition_range_start"] == first.isoformat()
    assert run["tags"]["dagster/asset_partition_range_end"] == last.isoformat()

    after = stack.loaded_rows()
    for source in SOURCES:
        before = ui_backfill["before"][source]
        assert not chosen & set(before), f"{source}: backfilled days were loaded before"
        # Exactly the chosen days were added; the days around them (landed, never
        # selected) are still absent; earlier days are untouched.
        assert set(after[source]) == set(before) | {
            d for d in chosen if stack.landed_rows(source, d)
        }, source
        for day in (first - dt.timedelta(days=1), last + dt.timedelta(days=1)):
            assert day not in after[source], f"{source} {day} loaded but not selected"
        assert {d: after[source][d] for d in before} == before, source
        for day in chosen:
            landed = stack.landed_rows(source, day)
            assert after[source].get(day, 0) == landed, f"{source} {day}"
    assert all(after["orders"].get(d) for d in chosen), "orders landed every day"


def test_refresh_runs_after_the_ui_backfill(
    dagster_stack: DagsterStack,
    ui_backfill: dict,
) -> None:
    stack = dagster_stack
    sensor = stack.graphql(
        SENSOR_QUERY,
        {
            "s": {
                "repositoryLocationName": PROJECT_ROOT.name,
                "repositoryName": "__repository__",
                "sensorName": "refresh_after_ingest",
            }
        },
    )["sensorOrError"]
    assert sensor["__typename"] == "Sensor", sensor
    assert sensor["sensorState"]["status"] == "RUNNING"

    run_id = backfill(stack, ui_backfill["id"])["runs"][0]["runId"]
    refresh = stack.wait_for_run({"lifecycle/after_run": run_id}, timeout_s=120)
    (refresh,) = stack.wait_runs([refresh["runId"]], timeout_s=300)
    assert refresh["jobName"] == "refresh"
    assert refresh["status"] == "SUCCESS", stack.failures([refresh["runId"]])
    # Exactly one refresh for that backfill.
    assert len(stack.runs({"lifecycle/after_run": run_id})) == 1

    last = ui_backfill["last"]
    with connect(stack.warehouse, read_only=True) as con:
        newest, n = con.execute(
            "select max(as_of_date), count(*) filter (where as_of_date = $d) "
            "from marts.customer_segments",
            {"d": last},
        ).fetchone()
    assert newest == last
    assert n > 0
