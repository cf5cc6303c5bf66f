"""Landing sensor (cursor, readiness), run-failure sensor and webhook alerts, against real
files, a real Dagster instance and a real HTTP server on 127.0.0.1."""

import datetime as dt
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from orchestration import alerts
from orchestration.defs.follow import is_ingest_key, refresh_after_ingest, refresh_request
from orchestration.defs.sensors import (
    FAILURES_FILE,
    ORDERS_KEY,
    LandingPolicy,
    build_landing_sensor,
    ready_days,
    run_failure_alert,
)
from orchestration.defs.shared import DAILY, MAX_DATE_TAG, MIN_DATE_TAG

DAY = dt.date(2025, 6, 10)
POLICY = LandingPolicy(lookback_days=3, settle_seconds=1800, quiet_seconds=60)


def land(landing, source, day, age_s, ext="csv"):
    """A landing file whose last change was ``age_s`` seconds ago."""
    path = landing / source / f"{day.isoformat()}.{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("header\nrow\n")
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def window(last):
    return [last - dt.timedelta(days=i) for i in range(3)]


def test_a_day_starts_once_when_its_orders_file_settled(tmp_path):
    now = time.time()
    assert ready_days(tmp_path, window(DAY), None, now, POLICY)[0] == []
    land(tmp_path, "orders", DAY, age_s=10)  # still being written
    assert ready_days(tmp_path, window(DAY), None, now, POLICY)[0] == []
    land(tmp_path, "orders", DAY, age_s=120)
    to_run, up_to_date, cursor = ready_days(tmp_path, window(DAY), None, now, POLICY)
    assert (to_run, up_to_date) == ([DAY], [])
    assert json.loads(cursor) == {"handled": [DAY.isoformat()]}
    # same files, new evaluation: nothing; a rewritten file does not restart the day either
    land(tmp_path, "orders", DAY, age_s=100)
    assert ready_days(tmp_path, window(DAY), cursor, now, POLICY)[:2] == ([], [])


def test_waits_for_the_sources_delivered_the_day_before_until_settled(tmp_path):
    before = DAY - dt.timedelta(days=1)
    for source in ("orders", "reviews"):
        land(tmp_path, source, before, age_s=90_000)
    handled = json.dumps({"handled": [before.isoformat()]})
    land(tmp_path, "orders", DAY, age_s=300)
    now = time.time()
    assert ready_days(tmp_path, window(DAY), handled, now, POLICY)[0] == []
    land(tmp_path, "reviews", DAY, age_s=300, ext="jsonl")
    assert ready_days(tmp_path, window(DAY), handled, now, POLICY)[0] == [DAY]
    # without the reviews file, the day starts once the files are 30 minutes old
    (tmp_path / "reviews" / f"{DAY}.jsonl").unlink()
    land(tmp_path, "orders", DAY, age_s=1900)
    assert ready_days(tmp_path, window(DAY), handled, now, POLICY)[0] == [DAY]


def test_days_loaded_after_their_files_landed_are_not_restarted(tmp_path):
    early, late = DAY - dt.timedelta(days=1), DAY
    land(tmp_path, "orders", early, age_s=7200)
    land(tmp_path, "orders", late, age_s=600)
    # the 02:00 run loaded both days an hour ago: `late` landed after that run
    loaded = time.time() - 3600
    to_run, up_to_date, cursor = ready_days(
        tmp_path, window(DAY), None, time.time(), POLICY, lambda day: loaded
    )
    assert (to_run, up_to_date) == ([late], [early])
    assert set(json.loads(cursor)["handled"]) == {early.isoformat(), late.isoformat()}


def test_cursor_keeps_only_the_lookback_window(tmp_path):
    old = json.dumps({"handled": ["2025-01-01", DAY.isoformat()]})
    _, _, cursor = ready_days(tmp_path, window(DAY), old, time.time(), POLICY)
    assert json.loads(cursor) == {"handled": [DAY.isoformat()]}
    # a day outside the window is never a candidate, whatever lands for it
    land(tmp_path, "orders", dt.date(2025, 1, 1), age_s=7200)
    assert ready_days(tmp_path, window(DAY), cursor, time.time(), POLICY)[0] == []


def test_sensor_requests_one_run_per_day_with_a_run_key(tmp_path):
    newest = dt.date.fromisoformat(DAILY.get_last_partition_key())
    older = newest - dt.timedelta(days=1)
    land(tmp_path, "orders", newest, age_s=600)
    land(tmp_path, "orders", older, age_s=86_400)
    sensor = build_landing_sensor(tmp_path, POLICY, name="landing_sensor_test")
    with dg.instance_for_test() as instance:
        # `older` was already loaded (by the schedule, say) after its file landed
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=ORDERS_KEY, partition=older.isoformat())
        )
        result = sensor(dg.build_sensor_context(instance=instance))
        assert [(r.run_key, r.partition_key) for r in result.run_requests] == [
            (f"landing-{newest}", newest.isoformat())
        ]
        again = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
        assert again.run_requests == []
        assert json.loads(again.cursor)["handled"] == sorted([older.isoformat(), str(newest)])


class Hook(BaseHTTPRequestHandler):
    """Records POSTed JSON bodies; answers with the server's ``status``."""

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.server.delay)
        self.server.received.append(json.loads(body))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.received, server.status, server.delay = [], 200, 0.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield server
    server.shutdown()
    server.server_close()


def test_post_json_reports_errors_without_raising(webhook, tmp_path):
    assert alerts.post_json(webhook.url, {"a": 1}) is True
    assert webhook.received == [{"a": 1}]
    webhook.status = 500
    assert alerts.post_json(webhook.url, {"a": 2}) is False
    webhook.status, webhook.delay = 200, 2.0
    started = time.monotonic()
    assert alerts.post_json(webhook.url, {"a": 3}, timeout_s=0.3) is False
    assert time.monotonic() - started < 1.5
    closed = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    port = closed.server_address[1]
    closed.server_close()
    assert alerts.post_json(f"http://127.0.0.1:{port}/", {"a": 4}) is False
    assert alerts.post_json("file:///etc/passwd", {"a": 5}) is False
    # an unwritable failures file is logged, not raised
    outcome = alerts.record_failure({"run_id": "r"}, tmp_path, url=None)
    assert outcome == {"recorded": False, "posted": False}


@dg.op
def extract():
    return 1


@dg.op
def validate(value):
    raise ValueError(f"bad value {value}")


@dg.job
def failing_job():
    validate(extract())


def test_run_failure_sensor_records_and_posts_the_failure(webhook, monkeypatch):
    monkeypatch.setenv(alerts.WEBHOOK_ENV, webhook.url)
    with dg.instance_for_test() as instance:
        result = failing_job.execute_in_process(
            instance=instance, raise_on_error=False, tags={"dagster/partition": "2024-05-01"}
        )
        assert not result.success
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert",
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
        ).for_run_failure()
        run_failure_alert(context)
    [payload] = webhook.received
    assert payload["run_id"] == result.run_id
    assert payload["job"] == "failing_job"
    assert payload["partition"] == "2024-05-01"
    assert [s["step"] for s in payload["failed_steps"]] == ["validate"]
    assert "bad value 1" in payload["failed_steps"][0]["error"]
    lines = [json.loads(line) for line in FAILURES_FILE.read_text().splitlines()]
    assert [r for r in lines if r["run_id"] == result.run_id] == [payload]


@dg.asset(key=["raw", "orders"], partitions_def=DAILY)
def fake_raw_orders() -> None:
    pass


@dg.asset(key=["marts", "dim_customers"], deps=[fake_raw_orders])
def fake_mart() -> None:
    pass


def test_an_ingest_only_run_is_followed_by_one_refresh_with_its_day_range():
    with dg.instance_for_test() as instance:
        ingest = dg.materialize(
            [fake_raw_orders],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": "2024-05-01",
                "dagster/asset_partition_range_end": "2024-05-03",
            },
        )
        whole = dg.materialize(
            [fake_raw_orders, fake_mart], instance=instance, partition_key="2024-05-04"
        )
        requests = {}
        for result in (ingest, whole):
            context = dg.build_run_status_sensor_context(
                sensor_name="refresh_after_ingest",
                dagster_instance=instance,
                dagster_run=result.dagster_run,
                dagster_event=result.get_run_success_event(),
            )
            requests[result.run_id] = refresh_after_ingest(context)
    follow = requests[ingest.run_id]
    assert isinstance(follow, dg.RunRequest)
    assert follow.run_key == f"refresh-after-{ingest.run_id}"
    assert follow.tags[MIN_DATE_TAG] == "2024-05-01"
    assert follow.tags[MAX_DATE_TAG] == "2024-05-03"
    # a run that also built what is downstream needs no refresh
    assert isinstance(requests[whole.run_id], dg.SkipReason)


def test_refresh_job_selects_everything_but_ingest():
    assert refresh_request("r", {dg.AssetKey(["ml", "churn_scores"])}, {}) is None
    assert refresh_request("r", None, {}) is None
    assert refresh_request("r", {dg.AssetKey(["raw", "orders"])}, {}).tags.get(MIN_DATE_TAG) is None
    from orchestration.definitions import defs

    selected = defs().resolve_job_def("refresh").asset_layer.selected_asset_keys
    assert dg.AssetKey(["marts", "customer_segments"]) in selected
    assert dg.AssetKey(["ml", "churn_scores"]) in selected
    assert not any(is_ingest_key(k) for k in selected)
