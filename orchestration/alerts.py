"""Run-failure alerts: a JSON-lines log of failed runs and an optional webhook (no dagster).

The run-failure sensor (``orchestration/defs/sensors.py``) builds one record per failed run
and hands it to :func:`record_failure`, which

- appends it to ``<warehouse folder>/run_failures.jsonl`` (a plain file, so recording a
  failure never waits for, or takes, the DuckDB lock), and
- when ``LIFECYCLE_ALERT_WEBHOOK_URL`` is set, POSTs it as JSON to that URL (Slack/Teams
  incoming webhooks, PagerDuty/Opsgenie bridges, any HTTP endpoint).

Alerting must never make things worse: every error (unwritable file, unreachable or slow
endpoint, HTTP error status) is logged and swallowed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

WEBHOOK_ENV = "LIFECYCLE_ALERT_WEBHOOK_URL"
FAILURES_FILE_NAME = "run_failures.jsonl"
WEBHOOK_TIMEOUT_S = 5.0

_log = logging.getLogger(__name__)


def webhook_url() -> str | None:
    """The webhook URL from ``LIFECYCLE_ALERT_WEBHOOK_URL`` (read at call time), or None."""
    url = (os.environ.get(WEBHOOK_ENV) or "").strip()
    return url or None


def failure_record(
    run_id: str,
    job_name: str,
    error: str,
    failed_steps: list[dict[str, str]],
    partition: str | None,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON payload describing one failed run.

    Parameters
    ----------
    run_id, job_name
        The Dagster run and its job.
    error
        The run-level failure message.
    failed_steps
        One ``{"step": key, "error": message}`` per failed step.
    partition
        The run's partition (``2024-05-01``) or range (``2024-05-01...2024-05-03``), if any.
    tags
        Extra run tags worth keeping (schedule, sensor, backfill id).
    """
    return {
        "event": "dagster_run_failure",
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "job": job_name,
        "partition": partition,
        "error": error,
        "failed_steps": failed_steps,
        "tags": tags or {},
    }


def append_jsonl(path: Path, record: dict[str, Any]) -> bool:
    """Append ``record`` as one JSON line to ``path`` (creating its folder). Never raises;
    returns whether the line was written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str, sort_keys=True) + "\n")
        return True
    except OSError as exc:
        _log.error("could not append the run failure to %s: %s", path, exc)
        return False


def post_json(
    url: str,
    payload: dict[str, Any],
    timeout_s: float = WEBHOOK_TIMEOUT_S,
    log: logging.Logger | None = None,
) -> bool:
    """POST ``payload`` as JSON to ``url`` (http or https only). Never raises: a refused
    connection, a timeout or an HTTP error status is logged and False is returned."""
    log = log or _log
    if not url.lower().startswith(("http://", "https://")):
        log.error("alert webhook not called: %s must be an http(s) URL", WEBHOOK_ENV)
        return False
    body = json.dumps(payload, default=str).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "lifecycle-alerts/1"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            response.read()
            return 200 <= response.status < 300
    except urllib.error.HTTPError as exc:
        log.error("alert webhook answered HTTP %s %s", exc.code, exc.reason)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.error("alert webhook unreachable: %s", getattr(exc, "reason", exc))
    return False


def record_failure(
    record: dict[str, Any],
    failures_file: Path,
    url: str | None = None,
    log: logging.Logger | None = None,
) -> dict[str, bool]:
    """Log, append and (if ``url``) post one failure record; never raises.

    Returns ``{"recorded": ..., "posted": ...}`` (``posted`` is False without a URL)."""
    log = log or _log
    steps = ", ".join(s["step"] for s in record.get("failed_steps", [])) or "none"
    log.error(
        f"run {record.get('run_id')} of job {record.get('job')} failed "
        f"(partition {record.get('partition')}, failed steps: {steps}): {record.get('error')}"
    )
    recorded = append_jsonl(failures_file, record)
    posted = post_json(url, record, log=log) if url else False
    return {"recorded": recorded, "posted": posted}
